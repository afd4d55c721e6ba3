#include "lightningstor/s3_error.h"

#include <unordered_map>

#include "lightningstor/xml.h"

namespace photon::lightningstor {
namespace {

constexpr const char* kPayloadUrl = "lightningstor/s3code";

const std::unordered_map<std::string_view, int>& CodeTable() {
  static const auto* table = new std::unordered_map<std::string_view, int>{
      {"AccessDenied", 403},
      {"AccessForbidden", 403},
      {"AuthorizationHeaderMalformed", 400},
      {"AuthorizationQueryParametersError", 400},
      {"BadDigest", 400},
      {"BucketAlreadyExists", 409},
      {"BucketAlreadyOwnedByYou", 409},
      {"BucketNotEmpty", 409},
      {"EntityTooLarge", 400},
      {"EntityTooSmall", 400},
      {"IncompleteBody", 400},
      {"InternalError", 500},
      {"InvalidAccessKeyId", 403},
      {"InvalidArgument", 400},
      {"InvalidBucketName", 400},
      {"InvalidBucketState", 409},
      {"InvalidDigest", 400},
      {"InvalidLocationConstraint", 400},
      {"InvalidPart", 400},
      {"InvalidPartNumber", 416},
      {"InvalidPartOrder", 400},
      {"InvalidPolicyDocument", 400},
      {"InvalidRange", 416},
      {"InvalidRequest", 400},
      {"InvalidStorageClass", 400},
      {"InvalidTag", 400},
      {"InvalidTargetBucketForLogging", 400},
      {"AccessControlListNotSupported", 400},
      {"InvalidBucketAclWithObjectOwnership", 400},
      {"OwnershipControlsNotFoundError", 404},
      {"ServerSideEncryptionConfigurationNotFoundError", 404},
      {"KeyTooLongError", 400},
      {"MalformedACLError", 400},
      {"MalformedPOSTRequest", 400},
      {"MalformedPolicy", 400},
      {"MalformedXML", 400},
      {"MaxPostPreDataLengthExceeded", 400},
      {"MethodNotAllowed", 405},
      {"MissingContentLength", 411},
      {"MissingSecurityHeader", 400},
      {"NoSuchBucket", 404},
      {"NoSuchBucketPolicy", 404},
      {"NoSuchCORSConfiguration", 404},
      {"NoSuchKey", 404},
      {"NoSuchObjectLockConfiguration", 404},
      {"NoSuchPublicAccessBlockConfiguration", 404},
      {"ObjectLockConfigurationNotFoundError", 404},
      {"NoSuchLifecycleConfiguration", 404},
      {"NoSuchTagSet", 404},
      {"NoSuchUpload", 404},
      {"NoSuchVersion", 404},
      {"NotImplemented", 501},
      {"NotModified", 304},
      {"PreconditionFailed", 412},
      {"RequestTimeTooSkewed", 403},
      {"SignatureDoesNotMatch", 403},
      {"UnexpectedContent", 400},
      {"XAmzContentSHA256Mismatch", 400},
  };
  return *table;
}

}  // namespace

Status S3Error(std::string_view code, std::string message) {
  if (message.empty()) message = std::string(code);
  Status status(absl::StatusCode::kUnknown, std::string(message));
  status.SetPayload(kPayloadUrl, absl::Cord(std::string(code)));
  return status;
}

std::string S3Code(const Status& status) {
  auto payload = status.GetPayload(kPayloadUrl);
  if (payload) return std::string(*payload);
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return "NoSuchKey";
    case absl::StatusCode::kInvalidArgument:
      return "InvalidArgument";
    default:
      return "InternalError";
  }
}

int S3HttpStatus(std::string_view code) {
  auto it = CodeTable().find(code);
  return it == CodeTable().end() ? 500 : it->second;
}

std::string S3ErrorXml(const Status& status, std::string_view resource,
                       std::string_view request_id) {
  XmlWriter w;
  w.Open("Error");
  w.Element("Code", S3Code(status));
  w.Element("Message", std::string(status.message()));
  w.Element("Resource", resource);
  w.Element("RequestId", request_id);
  w.Close("Error");
  return w.Take();
}

}  // namespace photon::lightningstor
