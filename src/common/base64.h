// Base64 (RFC 4648, standard alphabet, padded), the one copy every component uses: S3's
// Content-MD5, checksums, SSE-C keys and continuation tokens, and the stream relay's frames.
// Pure functions over OpenSSL's EVP block coder; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace photon {

std::string Base64Encode(std::string_view raw);

// False (and *raw untouched) unless `text` is padded base64 whose length is a multiple of 4.
bool Base64Decode(std::string_view text, std::string* raw);

}  // namespace photon
