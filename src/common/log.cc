#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace photon {

Status InitLogging(const std::string& component, const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  // from_str maps unknown strings to "off"; only accept that when asked for.
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError("log level: unknown level '" + level +
                                      "' (want trace|debug|info|warn|error|off)");
  }
  auto logger = spdlog::get(component);
  if (!logger) logger = spdlog::stderr_color_mt(component);
  spdlog::set_default_logger(logger);
  spdlog::set_level(parsed);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  return absl::OkStatus();
}

}  // namespace photon
