// fiberlb's configuration file (--config), YAML. Validated at start-up: an unknown key or a bad
// value fails with the key's name. listeners and pools are the initial state; once
// DATA_DIR/state.json exists (the API's changes), a restart re-applies that instead.
//
//   api: 127.0.0.1:18090         # REST API, /healthz, /metrics; "" disables the API
//   data_dir: /var/lib/fiberlb    # 0700: state.json, api.token (0600), run/ (haproxy)
//   haproxy: /usr/sbin/haproxy    # the L7 data plane binary
//   access_log: ""                # default DATA_DIR/access.log; "off": none
//   listeners: [...]              # see docs/fiberlb.md
//   pools: [...]
//   l4:                           # stateless L4 listeners (l4_service.h); optional
//     device: eth0                #   where VIP packets arrive and leave
//     listeners: [...]
//   bgp: {route_protocol: 200}    # VIP routes the node's BIRD announces (L4 listeners and
//                                 # L7 listeners with `announce`)
#pragma once

#include <optional>
#include <string>

#include "common/status.h"
#include "fiberlb/l4_service.h"
#include "fiberlb/model.h"

namespace photon::fiberlb {

struct Config {
  std::string api = "127.0.0.1:18090";
  std::string data_dir = "/var/lib/fiberlb";
  std::string haproxy = "/usr/sbin/haproxy";
  std::string access_log;
  State state;
  std::optional<L4Settings> l4;  // absent: no L4 path on this node
  int bgp_route_protocol = 0;    // the bgp section's; 0: no bgp section
};

StatusOr<Config> LoadConfig(const std::string& path);
StatusOr<Config> ParseConfig(const std::string& yaml_text);

// YAML → JSON: plain scalars that read as integers or booleans become numbers and booleans,
// quoted ones stay strings.
StatusOr<nlohmann::json> YamlToJson(const std::string& yaml_text);

}  // namespace photon::fiberlb
