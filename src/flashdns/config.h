// flashdns configuration: the YAML file given by --config, validated at start-up so a bad
// file fails fast naming the offending key. Plain data: thread-compatible.
//
//   listen: ["127.0.0.1:53", "[::1]:53"]   # UDP and TCP on each; default 127.0.0.1:5353
//   zones:                                  # zone files (read-only through the API)
//     - name: example.com.
//       file: zones/example.com.zone        # relative to the config file's directory
//       allow_transfer: ["127.0.0.1", "10.0.0.0/8"]   # AXFR clients; default none
//   api: 127.0.0.1:8053                     # REST API, /healthz, /metrics; "" disables
//   data_dir: /var/lib/flashdns             # API token and API-managed zones
//   workers: 2                              # UDP worker threads per address; default nproc
//   api_allow_transfer: ["127.0.0.1"]       # allow_transfer for API-created zones
//   rrl:                                    # UDP response-rate limiting (rrl.h); on by default
//     rate: 200                             # responses/s per (client prefix, kind); 0: off
//     burst: 200                            # default: rate
//     slip: 2                               # every 2nd limited response goes out with TC
//     ipv4_prefix: 24
//     ipv6_prefix: 56
//     table_size: 65536
//     exempt: ["127.0.0.0/8", "::1"]        # never limited (the default: loopback)
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "flashdns/rrl.h"

namespace photon::flashdns {

struct ZoneConfig {
  std::string name;  // presentation, with trailing dot
  std::string file;  // absolute after loading
  std::vector<std::string> allow_transfer;
};

struct Config {
  std::vector<std::string> listen = {"127.0.0.1:5353"};
  std::vector<ZoneConfig> zones;
  std::string api = "127.0.0.1:8053";
  std::string data_dir = "/var/lib/flashdns";
  int workers = 0;  // 0: one per CPU
  std::vector<std::string> api_allow_transfer;
  RrlOptions rrl;
};

StatusOr<Config> LoadConfig(const std::string& path);
StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& base_dir);

}  // namespace photon::flashdns
