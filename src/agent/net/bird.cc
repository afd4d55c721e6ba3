#include "agent/net/bird.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "agent/net/exec.h"
#include "agent/net/ipv4.h"

namespace photon::agent::net {

Status ValidateBirdOptions(const BirdOptions& o) {
  if (!ParseIpv4(o.router_id).ok()) return absl::InvalidArgumentError("router_id: not IPv4");
  if (!o.local_address.empty() && !ParseIpv4(o.local_address).ok()) {
    return absl::InvalidArgumentError("local_address: not IPv4");
  }
  if (o.local_as == 0) return absl::InvalidArgumentError("local_as: must be set");
  if (o.peers.empty()) return absl::InvalidArgumentError("peers: at least one BGP peer");
  for (size_t i = 0; i < o.peers.size(); ++i) {
    if (!ParseIpv4(o.peers[i].address).ok() || o.peers[i].as == 0) {
      return absl::InvalidArgumentError(absl::StrCat("peers[", i, "]: address and as required"));
    }
  }
  if (o.bfd_interval_ms < 10 || o.bfd_interval_ms > 10000) {
    return absl::InvalidArgumentError("bfd_interval_ms: 10-10000");
  }
  if (o.bfd_multiplier < 2 || o.bfd_multiplier > 50) {
    return absl::InvalidArgumentError("bfd_multiplier: 2-50");
  }
  for (char c : o.bfd_interface + o.log_path) {
    if (c == '"' || c == '\\' || c == '\n') {
      return absl::InvalidArgumentError("bfd_interface/log_path: quote or newline");
    }
  }
  return absl::OkStatus();
}

std::string RenderNodeBirdConfig(const BirdOptions& o) {
  std::string s;
  if (!o.log_path.empty()) absl::StrAppend(&s, "log \"", o.log_path, "\" all;\n");
  absl::StrAppend(&s, "router id ", o.router_id, ";\n", "protocol device { scan time 10; }\n",
                  "protocol kernel ports {\n  ipv4 { import where krt_source = ", o.route_protocol,
                  " && net.len = 32; export none; };\n  learn;\n", "  scan time 10;\n}\n",
                  "protocol bfd {\n  interface \"", o.bfd_interface, "\" { interval ",
                  o.bfd_interval_ms, " ms; multiplier ", o.bfd_multiplier, "; };\n}\n");
  for (size_t i = 0; i < o.peers.size(); ++i) {
    absl::StrAppend(&s, "protocol bgp rack", i, " {\n  local ", o.local_address, " as ", o.local_as,
                    ";\n  neighbor ", o.peers[i].address, " as ", o.peers[i].as,
                    ";\n  bfd yes;\n  hold time 3; keepalive time 1; connect retry time 1;",
                    " error wait time 1, 2;\n",
                    "  ipv4 { import none; export where proto = \"ports\"; };\n}\n");
  }
  return s;
}

static Status WriteFileAtomic(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError("cannot write " + tmp);
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::InternalError("cannot write " + path);
  }
  return absl::OkStatus();
}

Status ReconfigureBird(const std::string& path, const std::string& socket,
                       const std::string& config) {
  std::string candidate = path + ".new";
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(candidate, config));
  auto parsed = ExecOk({"bird", "-p", "-c", candidate});
  if (!parsed.ok()) {
    ::unlink(candidate.c_str());
    return absl::InvalidArgumentError("BIRD refuses the rendered config: " +
                                      std::string(parsed.status().message()));
  }
  if (::rename(candidate.c_str(), path.c_str()) != 0) {
    return absl::InternalError("cannot rename " + candidate);
  }
  PHOTON_ASSIGN_OR_RETURN(std::string out,
                          ExecOk({"birdc", "-s", socket, "configure", "\"" + path + "\""}));
  if (out.find("Reconfigur") == std::string::npos) {
    return absl::InternalError("birdc configure: " + out);
  }
  return absl::OkStatus();
}

}  // namespace photon::agent::net
