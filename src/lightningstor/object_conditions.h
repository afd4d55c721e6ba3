// Request preconditions of GET/HEAD, copies and writes: If-Match, If-None-Match,
// If-Modified-Since, If-Unmodified-Since (RFC 7232 order); and single "bytes="
// ranges (RFC 7233). Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "common/status.h"
#include "lightningstor/http/message.h"
#include "lightningstor/meta_store.h"
#include "lightningstor/types.h"

namespace photon::lightningstor {

// Whether an If-Match / If-None-Match header value ("*" or a list of ETags) matches etag.
bool EtagMatches(const std::string& header, const std::string& etag);

// PreconditionFailed or NotModified (as S3 errors) when a condition fails; `prefix` selects
// the x-amz-copy-source-* headers of a copy, for which NotModified becomes PreconditionFailed.
Status CheckConditions(const http::Request& req, const ObjectMeta& o, const std::string& prefix,
                       bool copy);

Status PreconditionFailed();

// The If-Match / If-None-Match: * conditions of a PUT, copy or completion (and If-Match,
// x-amz-if-match-size and x-amz-if-match-last-modified-time of a DELETE), for the metadata
// store to check inside the write's transaction: 412 PreconditionFailed when they fail,
// NoSuchKey when a match is asked of a key that has no object. nullptr when there are none.
Precondition WriteConditions(const http::Request& req, bool is_delete);

// Inclusive [first, last] for a Range header against an object size. nullopt when the header
// is absent or to be ignored (multiple or malformed ranges); InvalidRange when unsatisfiable.
StatusOr<std::optional<std::pair<uint64_t, uint64_t>>> ParseRange(const std::string& header,
                                                                  uint64_t size);

}  // namespace photon::lightningstor
