// S3 errors carried inside photon::Status: the S3 error code ("NoSuchKey") travels as a
// Status payload, so every layer can use PHOTON_RETURN_IF_ERROR and the HTTP edge turns the
// Status into the S3 XML error body with the right HTTP status. Thread-safe (pure functions).
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace photon::lightningstor {

// A Status that renders as the S3 error `code` (HTTP status from the table in s3_error.cc).
Status S3Error(std::string_view code, std::string message = "");

// The S3 code of a Status: its payload, else "InternalError".
std::string S3Code(const Status& status);

// HTTP status for an S3 error code (500 for unknown codes).
int S3HttpStatus(std::string_view code);

// <Error> XML body.
std::string S3ErrorXml(const Status& status, std::string_view resource,
                       std::string_view request_id);

}  // namespace photon::lightningstor
