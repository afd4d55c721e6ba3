// The gRPC transport of the ResourceService: the same verbs as the REST gateway, with objects
// carried as google.protobuf.Any. Bearer tokens travel in the "authorization" metadata;
// agents show their client certificate instead (docs/security.md).
// Thread-safe (gRPC's sync server calls it from its pool). Create and Delete are callback
// methods: they answer from the store's commit instead of parking a pool thread on it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "photon/service.grpc.pb.h"
#include "server/auth.h"
#include "server/resource_manager.h"

namespace photon::server {

class GrpcResourceService final
    : public api::ResourceService::WithCallbackMethod_Create<
          api::ResourceService::WithCallbackMethod_Delete<api::ResourceService::Service>> {
 public:
  GrpcResourceService(ResourceManager* resources, Authenticator* auth, MetricsRegistry* metrics)
      : resources_(resources), auth_(auth), metrics_(metrics) {}

  grpc::ServerUnaryReactor* Create(grpc::CallbackServerContext* ctx, const api::CreateRequest* req,
                                   api::CreateResponse* resp) override;
  grpc::Status Get(grpc::ServerContext* ctx, const api::GetRequest* req,
                   api::GetResponse* resp) override;
  grpc::Status Update(grpc::ServerContext* ctx, const api::UpdateRequest* req,
                      api::UpdateResponse* resp) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx, const api::DeleteRequest* req,
                                   api::DeleteResponse* resp) override;
  grpc::Status List(grpc::ServerContext* ctx, const api::ListRequest* req,
                    api::ListResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const api::WatchRequest* req,
                     grpc::ServerWriter<api::WatchEvent>* writer) override;
  grpc::Status ExecuteAction(grpc::ServerContext* ctx, const api::ActionRequest* req,
                             api::ActionResponse* resp) override;

 private:
  // The caller; a refusal is audited (folded per address, see RefusalThrottle).
  StatusOr<Principal> Who(grpc::ServerContextBase* ctx, const char* method);
  // The credential: the client certificate of the connection (checked against the built-in
  // CA, as on REST) or else the bearer token.
  StatusOr<Principal> Identify(grpc::ServerContextBase* ctx);
  PeerCertificate PeerCert(const grpc::AuthContext& ctx);
  // Audits a mutating call refused before it reached the resource manager; returns status.
  Status Malformed(const Principal& who, const std::string& action, const std::string& target,
                   const Status& status);
  void Count(const char* method, const grpc::Status& st, int64_t t0);

  ResourceManager* resources_;
  Authenticator* auth_;
  MetricsRegistry* metrics_;
  std::mutex peers_mu_;
  std::map<std::string, PeerCertificate> peers_;  // verdicts by certificate PEM
};

grpc::Status ToGrpc(const Status& st);

}  // namespace photon::server
