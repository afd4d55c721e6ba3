#include "lightningstor/daemon.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/file_util.h"
#include "common/log.h"
#include "common/metrics.h"
#include "lightningstor/blob_store.h"
#include "lightningstor/http/server.h"
#include "lightningstor/key_store.h"
#include "lightningstor/meta_store.h"
#include "lightningstor/service.h"
#include "lightningstor/sweeper.h"

namespace photon::lightningstor {
namespace {

std::string KeysPath(const Config& config) { return config.data_dir + "/keys.json"; }

// Blob files no metadata points at are left-overs of a crash between rename and commit.
void RemoveOrphans(MetaStore& meta, BlobStore& blobs) {
  int removed = 0;
  blobs.ForEachBlob([&](const std::string& id) {
    auto referenced = meta.BlobReferenced(id);
    if (referenced.ok() && !*referenced) {
      blobs.Remove(id);
      ++removed;
    }
  });
  if (removed > 0) spdlog::info("removed {} orphaned blob file(s)", removed);
}

}  // namespace

int RunDaemon(const Config& config) {
  if (auto st = InitLogging("lightningstor", config.log_level); !st.ok()) {
    fprintf(stderr, "%s\n", std::string(st.message()).c_str());
    return 2;
  }
  if (auto st = MakeDirs(config.data_dir, 0700); !st.ok()) {
    spdlog::critical("data_dir: {}", std::string(st.message()));
    return 1;
  }
  auto meta = MetaStore::Open(config.data_dir + "/meta.db");
  if (!meta.ok()) {
    spdlog::critical("metadata: {}", std::string(meta.status().message()));
    return 1;
  }
  auto blobs = BlobStore::Open(config.data_dir);
  if (!blobs.ok()) {
    spdlog::critical("blobs: {}", std::string(blobs.status().message()));
    return 1;
  }
  RemoveOrphans(**meta, **blobs);
  KeyStore keys(KeysPath(config));
  MetricsRegistry metrics;
  SystemClock clock;
  S3Service service(config, meta->get(), blobs->get(), &keys, &metrics, &clock);

  // Block the stop signals before any thread starts so only sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  http::ServerOptions options;
  options.listen = config.listen;
  options.tls_cert = config.tls_cert;
  options.tls_key = config.tls_key;
  options.max_connections = config.max_connections;
  auto server =
      http::Server::Start(options, [&service](http::Request& req) { return service.Handle(req); });
  if (!server.ok()) {
    spdlog::critical("{}", std::string(server.status().message()));
    return 1;
  }
  int port = (*server)->port();
  if (!config.port_file.empty()) {
    if (auto st = WriteFileAtomic(config.port_file, std::to_string(port) + "\n"); !st.ok()) {
      spdlog::critical("port_file: {}", std::string(st.message()));
      return 1;
    }
  }
  Sweeper sweeper(config, meta->get(), blobs->get(), &clock);
  sweeper.Start();
  spdlog::info("lightningstor listening on port {} ({}), region {}, data in {}", port,
               config.tls_cert.empty() ? "http" : "https", config.region, config.data_dir);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  sweeper.Stop();
  (*server)->Stop();
  return 0;
}

int KeysCreate(const Config& config, const std::string& name, const std::string& user) {
  if (auto st = MakeDirs(config.data_dir, 0700); !st.ok()) {
    fprintf(stderr, "data_dir: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  KeyStore keys(KeysPath(config));
  auto key = keys.Create(name, user);
  if (!key.ok()) {
    fprintf(stderr, "keys create: %s\n", std::string(key.status().message()).c_str());
    return 1;
  }
  // stdout is exactly the credentials file photon-server reads; the account goes to stderr.
  printf("access_key_id: %s\nsecret_access_key: %s\n", key->id.c_str(), key->secret.c_str());
  fprintf(stderr, "key %s acts as user %s\n", key->id.c_str(), key->user.c_str());
  return 0;
}

int KeysList(const Config& config) {
  KeyStore keys(KeysPath(config));
  auto list = keys.List();
  if (!list.ok()) {
    fprintf(stderr, "keys list: %s\n", std::string(list.status().message()).c_str());
    return 1;
  }
  for (const auto& k : *list)
    printf("%s\t%s\t%s\t%s\n", k.id.c_str(), k.name.c_str(), k.created.c_str(), k.user.c_str());
  return 0;
}

int KeysDelete(const Config& config, const std::string& id) {
  KeyStore keys(KeysPath(config));
  if (auto st = keys.Delete(id); !st.ok()) {
    fprintf(stderr, "keys delete: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  printf("deleted %s\n", id.c_str());
  return 0;
}

}  // namespace photon::lightningstor
