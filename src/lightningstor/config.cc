#include "lightningstor/config.h"

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>

#include "common/file_util.h"

namespace photon::lightningstor {
namespace {

using Setter = std::function<void(Config&, const YAML::Node&)>;

template <typename T>
Setter Field(T Config::*member) {
  return [member](Config& c, const YAML::Node& n) { c.*member = n.as<T>(); };
}

// Every key of the file, declared once.
const std::map<std::string, Setter>& Fields() {
  static const auto* fields = new std::map<std::string, Setter>{
      {"listen", Field(&Config::listen)},
      {"data_dir", Field(&Config::data_dir)},
      {"region", Field(&Config::region)},
      {"log_level", Field(&Config::log_level)},
      {"tls_cert", Field(&Config::tls_cert)},
      {"tls_key", Field(&Config::tls_key)},
      {"virtual_host_domain", Field(&Config::virtual_host_domain)},
      {"max_object_size", Field(&Config::max_object_size)},
      {"inline_max_bytes", Field(&Config::inline_max_bytes)},
      {"clock_skew_seconds", Field(&Config::clock_skew_seconds)},
      {"lifecycle_day_seconds", Field(&Config::lifecycle_day_seconds)},
      {"sweeper_interval_seconds", Field(&Config::sweeper_interval_seconds)},
      {"access_log_flush_seconds", Field(&Config::access_log_flush_seconds)},
      {"abandoned_upload_seconds", Field(&Config::abandoned_upload_seconds)},
      {"max_connections", Field(&Config::max_connections)},
      {"port_file", Field(&Config::port_file)},
      {"sse_write_format", Field(&Config::sse_write_format)},
  };
  return *fields;
}

}  // namespace

StatusOr<Config> ParseConfig(const std::string& yaml_text) {
  Config config;
  try {
    YAML::Node root = YAML::Load(yaml_text);
    if (root && !root.IsNull()) {
      if (!root.IsMap()) return absl::InvalidArgumentError("config: top level must be a mapping");
      for (const auto& kv : root) {
        std::string key = kv.first.as<std::string>();
        auto it = Fields().find(key);
        if (it == Fields().end())
          return absl::InvalidArgumentError("config: unknown key '" + key + "'");
        try {
          it->second(config, kv.second);
        } catch (const YAML::Exception& e) {
          return absl::InvalidArgumentError("config: bad value for '" + key + "': " + e.what());
        }
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(std::string("config: ") + e.what());
  }
  if (config.data_dir.empty()) return absl::InvalidArgumentError("config: 'data_dir' is required");
  if (config.region.empty())
    return absl::InvalidArgumentError("config: 'region' must not be empty");
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return absl::InvalidArgumentError("config: 'tls_cert' and 'tls_key' go together");
  }
  if (config.sse_write_format != "gcm" && config.sse_write_format != "ctr-legacy") {
    return absl::InvalidArgumentError(
        "config: 'sse_write_format' must be gcm (or ctr-legacy, for tests of old data)");
  }
  // Inline bodies are held in memory until the request ends and then live in SQLite rows.
  if (config.inline_max_bytes > (1 << 20)) {
    return absl::InvalidArgumentError("config: 'inline_max_bytes' must be at most 1048576 (1 MiB)");
  }
  if (config.lifecycle_day_seconds <= 0 || config.sweeper_interval_seconds <= 0 ||
      config.access_log_flush_seconds <= 0) {
    return absl::InvalidArgumentError(
        "config: 'lifecycle_day_seconds', 'sweeper_interval_seconds' and "
        "'access_log_flush_seconds' must be positive");
  }
  return config;
}

StatusOr<Config> LoadConfig(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok())
    return absl::InvalidArgumentError("config: cannot read " + path + ": " +
                                      std::string(text.status().message()));
  return ParseConfig(*text);
}

}  // namespace photon::lightningstor
