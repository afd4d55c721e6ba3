// The web dashboard (docs/ui.md): GET /ui/... serves its files, compiled into photon-server
// from src/server/ui/web/ at build time (embed_assets.cmake). The files hold no secrets and are
// served without a token; every API call they make carries the user's token in a header.
#pragma once

#include <string>

#include "common/http_server.h"

namespace photon::server::ui {

// "/ui" and everything under "/ui/".
bool Owns(const std::string& path);

// The file, with its content type and the headers that lock the page down (a strict
// Content-Security-Policy: scripts, styles and connections from this origin only, no inline
// code, no framing; no referrer). "/ui" redirects to "/ui/"; unknown files are 404.
HttpResponse Serve(const HttpRequest& req);

}  // namespace photon::server::ui
