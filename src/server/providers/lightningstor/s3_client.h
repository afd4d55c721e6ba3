// The few S3 calls photon-server's lightningstor provider makes, signed with AWS Signature
// Version 4 (header form, signed SHA-256 payload) over the shared HTTP client. The signer is
// common/sigv4.h, the one lightningstor verifies with; tests/server/bucket_provider_test.py
// checks the calls against the real daemon, and SignV4 is a pure function for unit checks.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/xml.h"
#include "common/xml_escape.h"

namespace photon::server::s3 {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
};

// Reads a file in the form `lightningstor keys create` prints
// ("access_key_id: ...\nsecret_access_key: ..."). Refuses a file readable by group or others.
StatusOr<Credentials> ReadCredentialsFile(const std::string& path);

// The headers that sign one request: host, x-amz-date, x-amz-content-sha256, authorization.
// `query` is decoded (name, value) pairs; `amz_date` is "YYYYMMDDTHHMMSSZ".
std::map<std::string, std::string> SignV4(
    const Credentials& creds, const std::string& region, const std::string& method,
    const std::string& host, const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& query, const std::string& body,
    const std::string& amz_date);

// An answer, or why there was none.
struct Reply {
  bool reached = false;  // false: no HTTP answer (message says why)
  int status = 0;
  std::string body;
  std::string code;     // S3 error code (<Code>), "" on success
  std::string message;  // S3 error message, or the transport error
  // The body read as XML: an empty node when the body is empty or an error is not XML.
  std::shared_ptr<const XmlNode> xml = std::make_shared<XmlNode>();
  std::string xml_error;  // a 2xx body that is not XML: why (callers must not use it)
};

// Fills a Reply from an HTTP answer: the XML tree, and the S3 error code and message of an
// error answer (the start of the body when it is not S3's XML).
Reply ReadAnswer(int status, std::string body);

class Client {
 public:
  Client(std::string endpoint, std::string region, std::chrono::milliseconds timeout)
      : endpoint_(std::move(endpoint)), region_(std::move(region)), timeout_(timeout) {}
  // path: "/" or "/<bucket>"; query: one sub-resource ("versioning", "") and its parameters.
  Reply Call(const Credentials& creds, const std::string& method, const std::string& path,
             const std::vector<std::pair<std::string, std::string>>& query,
             const std::string& body = "");

 private:
  std::string endpoint_;
  std::string region_;
  std::chrono::milliseconds timeout_;
};

using photon::XmlEscape;  // common/xml_escape.h

}  // namespace photon::server::s3
