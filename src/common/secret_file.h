// A service's API secret kept in a file: read if it is there, else made and written 0600.
#pragma once

#include <string>

#include "common/status.h"

namespace photon {

// Reads the secret at `path` (trailing whitespace dropped; an empty file is an error), first
// tightening a file readable by group or others to 0600 rather than trusting it as is. When
// there is no file, writes a new random 32-byte hex secret 0600 and sets *created.
StatusOr<std::string> LoadOrCreateSecret(const std::string& path, bool* created);

}  // namespace photon
