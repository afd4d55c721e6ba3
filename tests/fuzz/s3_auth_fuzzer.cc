// libFuzzer target for what lightningstor parses before it trusts a request: the request
// target (path, query string, percent-decoding), the SigV4 Authorization header and the
// presigned query parameters, through the real Authenticator with one known key (the AWS
// documentation's example key, so the corpus can carry the documented requests), and the
// date formats. Any input must give an S3 error or an AuthInfo, never a crash.
// Input: line 1 method, line 2 request target, then "name: value" header lines.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "lightningstor/auth.h"
#include "lightningstor/sigv4.h"

namespace {

using namespace photon::lightningstor;

std::string g_dir;

void RemoveDir() { std::filesystem::remove_all(g_dir); }

struct Fixture {
  Config config;
  ManualClock clock{1369353600LL * 1000 + 5000};  // 2013-05-24, the AWS examples' date
  KeyStore* keys = nullptr;
  Authenticator* auth = nullptr;
};

Fixture& Get() {
  static Fixture* f = [] {
    auto* fx = new Fixture;
    char tmpl[] = "/tmp/s3_auth_fuzz.XXXXXX";
    if (!mkdtemp(tmpl)) abort();
    g_dir = tmpl;
    atexit(RemoveDir);
    std::ofstream(g_dir + "/keys.json")
        << R"({"keys":[{"id":"AKIAIOSFODNN7EXAMPLE",)"
        << R"("secret":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","name":"doc","created":""}]})";
    fx->config.region = "us-east-1";
    fx->keys = new KeyStore(g_dir + "/keys.json");
    fx->auth = new Authenticator(&fx->config, fx->keys, &fx->clock);
    return fx;
  }();
  return *f;
}

std::string_view NextLine(std::string_view* text) {
  size_t nl = text->find('\n');
  std::string_view line = text->substr(0, nl);
  text->remove_prefix(nl == std::string_view::npos ? text->size() : nl + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& fx = Get();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // The parsers on their own, with the whole input.
  (void)sigv4::ParseAuthorizationHeader(text);
  (void)sigv4::ParseCredential(text);
  (void)sigv4::ParseAmzDate(text);
  (void)sigv4::ParseHttpDate(text);
  // The whole request path.
  http::Request req;
  req.method = std::string(NextLine(&text));
  req.target = std::string(NextLine(&text));
  http::ParseTarget(req);
  while (!text.empty()) {
    std::string_view line = NextLine(&text);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (auto& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    req.headers.emplace_back(std::move(name), std::string(value));
  }
  auto info = fx.auth->Authenticate(req);
  if (info.ok() && !info->anonymous && info->access_key != "AKIAIOSFODNN7EXAMPLE") abort();
  (void)sigv4::CanonicalQuery(req.query, "X-Amz-Signature");
  (void)sigv4::UriEncode(req.path, false);
  return 0;
}
