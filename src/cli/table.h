// The CLI's tables: columns padded to their widest cell, as kubectl prints them.
#pragma once

#include <string>
#include <vector>

namespace photon::cli {

// Prints rows to stdout, the first row being the header; nothing for no rows.
void PrintRows(const std::vector<std::vector<std::string>>& rows);

}  // namespace photon::cli
