// lightningstor configuration: one YAML file, every key declared once in config.cc with its
// default; unknown keys are refused naming the key, so a typo fails at start-up. Immutable after
// Load, so it is shared read-only between threads.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace photon::lightningstor {

struct Config {
  std::string listen = "127.0.0.1:9000";  // HOST:PORT; port 0 picks a free port
  std::string data_dir;                   // required: objects, metadata DB, keys file
  std::string region = "us-east-1";       // credential scopes naming another region are refused
  std::string log_level = "info";
  std::string tls_cert;  // PEM; TLS is on when both cert and key are set
  std::string tls_key;
  // Virtual-host-style addressing: "BUCKET.<domain>" in Host selects the bucket.
  std::string virtual_host_domain = "localhost";
  uint64_t max_object_size = 5ull << 30;        // single PUT / part limit (EntityTooLarge above)
  uint64_t inline_max_bytes = 64 << 10;         // objects up to this size live inside the DB
  int64_t clock_skew_seconds = 900;             // RequestTimeTooSkewed beyond this
  double lifecycle_day_seconds = 86400;         // length of a lifecycle "day" (short in tests)
  double sweeper_interval_seconds = 3600;       // how often lifecycle + upload cleanup run
  double access_log_flush_seconds = 300;        // how often access logs are delivered
  double abandoned_upload_seconds = 7 * 86400;  // multipart uploads older than this are aborted
  int max_connections = 1024;
  // How new SSE objects are stored: "gcm" (format 2, authenticated blocks). "ctr-legacy" writes
  // the old format 1 (AES-256-CTR, no integrity) and exists only so tests can make old data.
  std::string sse_write_format = "gcm";
  // Where the listening port is written after bind (handy with port 0); empty = nowhere.
  std::string port_file;
};

StatusOr<Config> LoadConfig(const std::string& path);
// Parses YAML text (for tests).
StatusOr<Config> ParseConfig(const std::string& yaml_text);

}  // namespace photon::lightningstor
