#include "server/ui/ui_handler.h"

#include <cstddef>
#include <string_view>

namespace photon::server::ui {

// Defined in the generated ui_assets.cc.
struct Asset {
  const char* path;  // relative to web/, e.g. "js/main.js"
  const unsigned char* data;
  size_t size;
};
extern const Asset kAssets[];
extern const size_t kAssetCount;

namespace {

constexpr std::string_view kPrefix = "/ui/";

// 'self' only: the page runs its own modules and talks to its own origin. No 'unsafe-inline'
// (the markup has no inline script or style attribute), no eval, no plugins, no framing.
constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

std::string ContentType(std::string_view path) {
  auto ends = [&](std::string_view ext) {
    return path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".json")) return "application/json";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

const Asset* Find(std::string_view rel) {
  for (size_t i = 0; i < kAssetCount; ++i) {
    if (rel == kAssets[i].path) return &kAssets[i];
  }
  return nullptr;
}

void Harden(HttpResponse* resp) {
  resp->headers.push_back({"Content-Security-Policy", kCsp});
  resp->headers.push_back({"X-Content-Type-Options", "nosniff"});
  resp->headers.push_back({"Referrer-Policy", "no-referrer"});
  resp->headers.push_back({"X-Frame-Options", "DENY"});
  // Files change with the binary; revalidating costs one request each and never shows a
  // page of an older server.
  resp->headers.push_back({"Cache-Control", "no-cache"});
}

}  // namespace

bool Owns(const std::string& path) { return path == "/ui" || path.rfind(kPrefix, 0) == 0; }

HttpResponse Serve(const HttpRequest& req) {
  HttpResponse resp;
  if (req.method != "GET" && req.method != "HEAD") {
    resp = HttpResponse::Text(405, req.method + " is not supported on " + req.path + "\n");
    resp.headers.push_back({"Allow", "GET, HEAD"});
  } else if (req.path == "/ui") {
    resp = HttpResponse::Text(308, "");
    resp.headers.push_back({"Location", "/ui/"});
  } else {
    std::string_view rel = std::string_view(req.path).substr(kPrefix.size());
    if (rel.empty()) rel = "index.html";
    const Asset* a = rel.find("..") == std::string_view::npos ? Find(rel) : nullptr;
    if (!a) {
      resp = HttpResponse::Text(404, "no file " + req.path + "\n");
    } else {
      resp.status = 200;
      resp.body.assign(reinterpret_cast<const char*>(a->data), a->size);
      resp.content_type = ContentType(rel);
    }
  }
  Harden(&resp);
  return resp;
}

}  // namespace photon::server::ui
