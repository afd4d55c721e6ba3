// Passwords of users: argon2id hashes in libsodium's encoded form ("$argon2id$v=19$m=...,t=...,
// p=1$salt$hash"), so the parameters travel with each hash and can be raised later.
// Hashing costs MEMLIMIT_INTERACTIVE (64 MiB) and OPSLIMIT_INTERACTIVE; at most two run at once
// so that a burst of logins cannot take the server's memory.
// Thread-safe.
#pragma once

#include <string>

#include "common/status.h"

namespace photon::server::identity {

// The argon2id hash of `password`. INVALID_ARGUMENT for a password shorter than 8 or longer
// than 1024 bytes.
StatusOr<std::string> HashPassword(const std::string& password);

// True if `password` matches `hash` (an argon2id string from HashPassword).
bool VerifyPassword(const std::string& hash, const std::string& password);

// Runs as long as a VerifyPassword: for a user that does not exist, so that the answer's time
// does not tell which names exist.
void VerifyNothing(const std::string& password);

}  // namespace photon::server::identity
