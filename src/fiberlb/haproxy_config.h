// Renders fiberlb's state as an HAProxy 2.6 configuration. Listeners become frontends, pools
// backends (one per pool, "p_<pool>"), members servers named as the members are, so the
// runtime API can address them ("p_web/m1"). Pure function: thread-compatible.
#pragma once

#include <map>
#include <set>
#include <string>

#include "fiberlb/model.h"

namespace photon::fiberlb {

struct RenderPaths {
  std::string run_dir;     // sockets, server-state file, crt-lists
  bool access_log = true;  // "log stdout": the worker's stdout is the access log
};

// Backend and server names as HAProxy knows them.
std::string BackendName(const std::string& pool);

// The server line's options after "server NAME ADDR" (also the arguments of "add server").
std::string ServerOptions(const Pool& pool, const Member& member);

// The crt-list files an https listener needs: file name → content. Certificates themselves are
// written by the caller as <run_dir>/certs/<listener>-<i>.pem (CertificatePath).
std::string CrtListPath(const RenderPaths& paths, const std::string& listener);
std::string CertificatePath(const RenderPaths& paths, const std::string& listener, size_t i);
std::string CrtList(const RenderPaths& paths, const Listener& listener);

// `draining`: members removed from the state whose connections still drain (pool → members);
// they stay in the configuration with weight 0 until deleted.
std::string RenderConfig(const State& state, const RenderPaths& paths,
                         const std::map<std::string, std::vector<Member>>& draining);

}  // namespace photon::fiberlb
