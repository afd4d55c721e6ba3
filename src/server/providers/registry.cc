// The one list of server-side provider drivers. Adding a driver: its folder under
// src/server/providers/<driver>/ (with a CMakeLists.txt adding its sources) and one line here.
#include <utility>

#include "server/providers/fiberlb/fiberlb_provider.h"
#include "server/providers/flashdns/flashdns_provider.h"
#include "server/providers/gslb/gslb_provider.h"
#include "server/providers/lightningstor/lightningstor_provider.h"
#include "server/providers/service_provider.h"

namespace photon::server {

namespace {
const std::vector<std::pair<std::string, ProviderFactory>>& Factories() {
  static const std::vector<std::pair<std::string, ProviderFactory>> factories = {
      {"fiberlb", &NewFiberLbProvider},
      {"flashdns", &NewFlashDnsProvider},
      {"gslb", &NewGslbProvider},
      {"lightningstor", &NewLightningstorProvider},
  };
  return factories;
}
}  // namespace

std::vector<std::string> ProviderDrivers() {
  std::vector<std::string> out;
  for (const auto& [name, f] : Factories()) out.push_back(name);
  return out;
}

StatusOr<std::unique_ptr<ZoneBackend>> CreateZoneBackend(const ProviderConfig& config) {
  if (config.driver == "flashdns") return NewFlashDnsZoneBackend(config);
  return std::unique_ptr<ZoneBackend>();
}

StatusOr<std::unique_ptr<ServiceProvider>> CreateProvider(const ProviderConfig& config) {
  for (const auto& [name, factory] : Factories()) {
    if (name == config.driver) return factory(config);
  }
  std::string known;
  for (const auto& d : ProviderDrivers()) known += (known.empty() ? "" : ", ") + d;
  return absl::InvalidArgumentError("providers: unknown driver '" + config.driver +
                                    "' (known: " + known + ")");
}

}  // namespace photon::server
