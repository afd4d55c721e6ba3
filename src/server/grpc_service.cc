#include "server/grpc_service.h"

#include <grpc/grpc_security_constants.h>

#include <condition_variable>
#include <deque>
#include <mutex>

#include "common/tls.h"
#include "common/util.h"
#include "server/object_util.h"

namespace photon::server {

grpc::Status ToGrpc(const Status& st) {
  if (st.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()));
}

namespace {

StatusOr<const KindInfo*> KindFor(const std::string& name, const google::protobuf::Any* any) {
  const KindInfo* kind = nullptr;
  if (!name.empty()) {
    kind = FindKind(name);
    if (!kind)
      return absl::InvalidArgumentError("kind: unknown kind '" + name +
                                        "' (known: " + KnownKindNames() + ")");
  }
  if (any && !any->type_url().empty()) {
    std::string type = any->type_url().substr(any->type_url().rfind('/') + 1);
    const KindInfo* by_type = FindKindByTypeName(type);
    if (!by_type) return absl::InvalidArgumentError("object: unknown type '" + type + "'");
    if (kind && kind != by_type)
      return absl::InvalidArgumentError("object: type " + type + " does not match kind " + name);
    kind = by_type;
  }
  if (!kind) return absl::InvalidArgumentError("kind: required");
  return kind;
}

// "kind/ns/name" of a request refused before its kind was known; ns as the verbs default it.
std::string RawTarget(const std::string& kind, const std::string& ns, const std::string& name) {
  return kind + "/" + (ns.empty() ? "default" : ns) + (name.empty() ? "" : "/" + name);
}

StatusOr<MessagePtr> Unpack(const KindInfo& kind, const google::protobuf::Any& any) {
  MessagePtr obj(kind.prototype->New());
  if (!any.UnpackTo(obj.get()))
    return absl::InvalidArgumentError("object: cannot decode as " + kind.kind);
  return obj;
}

}  // namespace

PeerCertificate GrpcResourceService::PeerCert(const grpc::AuthContext& ctx) {
  PeerCertificate peer;
  auto pem = ctx.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pem.empty()) return peer;
  const std::string cert(pem[0].data(), pem[0].size());
  {
    std::lock_guard lock(peers_mu_);
    if (auto it = peers_.find(cert); it != peers_.end()) return it->second;
  }
  // The listener requests certificates without verifying them (a bad one would fail the
  // handshake with no reason given); verified here as the REST listener's handshake does.
  peer.present = true;
  peer.verify_error = VerifyClientCertificate(cert, auth_->CaPem());
  if (auto info = InspectCertificate(cert); info.ok()) {
    peer.common_name = info->common_name;
    peer.serial_hex = info->serial_hex;
    peer.not_after_unix = info->not_after_unix;
  }
  std::lock_guard lock(peers_mu_);
  if (peers_.size() >= 4096) peers_.clear();  // bounded; a verification costs ~0.1 ms
  peers_[cert] = peer;
  return peer;
}

StatusOr<Principal> GrpcResourceService::Identify(grpc::ServerContextBase* ctx) {
  auto it = ctx->client_metadata().find("authorization");
  std::string header;
  if (it != ctx->client_metadata().end()) header.assign(it->second.data(), it->second.size());
  const auto auth_ctx = ctx->auth_context();
  const PeerCertificate peer = auth_ctx ? PeerCert(*auth_ctx) : PeerCertificate{};
  // As on REST: an agent by its client certificate, anyone else by a bearer token.
  if (!peer.present) return auth_->Authenticate(header);
  if (!header.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate and a bearer token: send one of them, not both");
  }
  return auth_->AuthenticateCertificate(peer);
}

StatusOr<Principal> GrpcResourceService::Who(grpc::ServerContextBase* ctx, const char* method) {
  auto who = Identify(ctx);
  if (!who.ok()) {
    // "ipv4:127.0.0.1:5000" / "ipv6:[::1]:5000": the address without scheme and port, as REST.
    std::string peer = ctx->peer();
    peer = peer.substr(peer.find(':') + 1);
    peer = peer.substr(0, peer.rfind(':'));
    if (peer.size() > 2 && peer.front() == '[') peer = peer.substr(1, peer.size() - 2);
    resources_->AuditUnauthenticated(peer, std::string("grpc ") + method);
  }
  return who;
}

Status GrpcResourceService::Malformed(const Principal& who, const std::string& action,
                                      const std::string& target, const Status& status) {
  resources_->AuditCall(who, action, target, HttpStatusFromCode(status.code()));
  return status;
}

void GrpcResourceService::Count(const char* method, const grpc::Status& st, int64_t t0) {
  metrics_
      ->GetCounter(
          "photon_grpc_requests_total", "gRPC API requests by method and code",
          {{"method", method}, {"code", std::to_string(static_cast<int>(st.error_code()))}})
      ->Inc();
  if (t0 != 0) {
    // From the handler's start to its answer; gRPC's own transport time is not in it.
    metrics_
        ->GetHistogram("photon_grpc_request_duration_seconds",
                       "gRPC API request latency by method, in the handler", {{"method", method}})
        ->Observe((MonotonicNanos() - t0) / 1e9);
  }
}

// Expects `t0`, the handler's start (MonotonicNanos; 0 for streams, which are not timed).
#define PHOTON_GRPC_TRY(method, expr) \
  do {                                \
    ::absl::Status st_ = (expr);      \
    if (!st_.ok()) {                  \
      auto gs_ = ToGrpc(st_);         \
      Count(method, gs_, t0);         \
      return gs_;                     \
    }                                 \
  } while (0)

grpc::ServerUnaryReactor* GrpcResourceService::Create(grpc::CallbackServerContext* ctx,
                                                      const api::CreateRequest* req,
                                                      api::CreateResponse* resp) {
  const int64_t t0 = MonotonicNanos();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto finish = [this, reactor, t0](const Status& st) {
    grpc::Status gs = ToGrpc(st);
    Count("Create", gs, t0);
    reactor->Finish(gs);
  };
  auto who = Who(ctx, "Create");
  if (!who.ok()) {
    finish(who.status());
    return reactor;
  }
  auto kind = KindFor(req->kind(), &req->object());
  if (!kind.ok()) {
    finish(Malformed(*who, "create", RawTarget(req->kind(), req->namespace_(), ""), kind.status()));
    return reactor;
  }
  auto obj = Unpack(**kind, req->object());
  if (!obj.ok()) {
    finish(
        Malformed(*who, "create", RawTarget((*kind)->plural, req->namespace_(), ""), obj.status()));
    return reactor;
  }
  // `resp` stays valid until Finish; the outcome arrives on the store's completion thread.
  resources_->CreateAsync(*who, **kind, req->namespace_(), std::move(*obj),
                          [resp, finish](StatusOr<CreateResult> r) {
                            if (r.ok()) {
                              *resp->mutable_operation() = r->operation;
                              resp->mutable_object()->PackFrom(*r->object);
                            }
                            finish(r.status());
                          });
  return reactor;
}

grpc::Status GrpcResourceService::Get(grpc::ServerContext* ctx, const api::GetRequest* req,
                                      api::GetResponse* resp) {
  const int64_t t0 = MonotonicNanos();
  auto who = Who(ctx, "Get");
  PHOTON_GRPC_TRY("Get", who.status());
  auto kind = KindFor(req->kind(), nullptr);
  PHOTON_GRPC_TRY("Get", kind.status());
  auto r = resources_->Get(*who, **kind, req->namespace_().empty() ? "default" : req->namespace_(),
                           req->name());
  PHOTON_GRPC_TRY("Get", r.status());
  resp->mutable_object()->PackFrom(**r);
  Count("Get", grpc::Status::OK, t0);
  return grpc::Status::OK;
}

grpc::Status GrpcResourceService::Update(grpc::ServerContext* ctx, const api::UpdateRequest* req,
                                         api::UpdateResponse* resp) {
  const int64_t t0 = MonotonicNanos();
  auto who = Who(ctx, "Update");
  PHOTON_GRPC_TRY("Update", who.status());
  const std::string target = RawTarget(req->kind(), req->namespace_(), req->name());
  auto kind = KindFor(req->kind(), &req->object());
  if (!kind.ok()) PHOTON_GRPC_TRY("Update", Malformed(*who, "update", target, kind.status()));
  auto obj = Unpack(**kind, req->object());
  if (!obj.ok()) PHOTON_GRPC_TRY("Update", Malformed(*who, "update", target, obj.status()));
  std::string name = req->name().empty() ? GetMetadata(**obj).name() : req->name();
  std::string ns = !req->namespace_().empty()                 ? req->namespace_()
                   : !GetMetadata(**obj).namespace_().empty() ? GetMetadata(**obj).namespace_()
                                                              : "default";
  auto r = resources_->Update(*who, **kind, ns, name, *obj, req->status_only());
  PHOTON_GRPC_TRY("Update", r.status());
  resp->mutable_object()->PackFrom(**r);
  Count("Update", grpc::Status::OK, t0);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* GrpcResourceService::Delete(grpc::CallbackServerContext* ctx,
                                                      const api::DeleteRequest* req,
                                                      api::DeleteResponse* resp) {
  const int64_t t0 = MonotonicNanos();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto finish = [this, reactor, t0](const Status& st) {
    grpc::Status gs = ToGrpc(st);
    Count("Delete", gs, t0);
    reactor->Finish(gs);
  };
  auto who = Who(ctx, "Delete");
  if (!who.ok()) {
    finish(who.status());
    return reactor;
  }
  auto kind = KindFor(req->kind(), nullptr);
  if (!kind.ok()) {
    finish(Malformed(*who, "delete", RawTarget(req->kind(), req->namespace_(), req->name()),
                     kind.status()));
    return reactor;
  }
  // `resp` stays valid until Finish; the outcome arrives on the store's completion thread.
  resources_->DeleteAsync(*who, **kind, req->namespace_().empty() ? "default" : req->namespace_(),
                          req->name(), req->resource_version(),
                          [resp, finish](StatusOr<operation::Operation> r) {
                            if (r.ok()) *resp->mutable_operation() = *r;
                            finish(r.status());
                          });
  return reactor;
}

grpc::Status GrpcResourceService::List(grpc::ServerContext* ctx, const api::ListRequest* req,
                                       api::ListResponse* resp) {
  const int64_t t0 = MonotonicNanos();
  auto who = Who(ctx, "List");
  PHOTON_GRPC_TRY("List", who.status());
  auto kind = KindFor(req->kind(), nullptr);
  PHOTON_GRPC_TRY("List", kind.status());
  auto r = resources_->List(*who, **kind, req->namespace_(), req->label_selector(),
                            req->field_selector(), req->limit(), req->continue_token());
  PHOTON_GRPC_TRY("List", r.status());
  for (const auto& item : r->items) {
    auto msg = item->Decoded();
    if (msg) resp->add_items()->PackFrom(*msg);
  }
  resp->set_resource_version(r->resource_version);
  resp->set_continue_token(r->continue_token);
  Count("List", grpc::Status::OK, t0);
  return grpc::Status::OK;
}

grpc::Status GrpcResourceService::Watch(grpc::ServerContext* ctx, const api::WatchRequest* req,
                                        grpc::ServerWriter<api::WatchEvent>* writer) {
  const int64_t t0 = 0;  // a stream: counted, not timed
  auto who = Who(ctx, "Watch");
  PHOTON_GRPC_TRY("Watch", who.status());
  auto kind = KindFor(req->kind(), nullptr);
  PHOTON_GRPC_TRY("Watch", kind.status());
  // The cache thread queues events; this handler thread writes them, so a slow client never
  // stalls the cache.
  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<CacheEvent> events;
    std::string cut;  // why the stream ends: its credential was revoked
  };
  auto q = std::make_shared<Queue>();
  auto id = resources_->Watch(*who, **kind, req->namespace_(), req->label_selector(),
                              req->field_selector(), req->resource_version(),
                              WatchSink{[q](const std::vector<CacheEvent>& events) {
                                std::lock_guard lock(q->mu);
                                q->events.insert(q->events.end(), events.begin(), events.end());
                                q->cv.notify_one();
                              }});
  PHOTON_GRPC_TRY("Watch", id.status());
  const uint64_t cut = auth_->CutOnRevocation(*who, [q](const std::string& why) {
    std::lock_guard lock(q->mu);
    q->cut = why;
    q->cv.notify_one();
  });
  std::string cut_reason;
  while (!ctx->IsCancelled()) {
    std::deque<CacheEvent> batch;
    {
      std::unique_lock lock(q->mu);
      q->cv.wait_for(lock, std::chrono::milliseconds(200),
                     [&] { return !q->events.empty() || !q->cut.empty(); });
      batch.swap(q->events);
      cut_reason = q->cut;
    }
    if (!cut_reason.empty()) break;
    bool ok = true;
    for (const auto& e : batch) {
      api::WatchEvent out;
      out.set_type(e.type == CacheEvent::Type::kAdded      ? api::WatchEvent::ADDED
                   : e.type == CacheEvent::Type::kDeleted  ? api::WatchEvent::DELETED
                   : e.type == CacheEvent::Type::kBookmark ? api::WatchEvent::BOOKMARK
                                                           : api::WatchEvent::MODIFIED);
      if (e.object) {
        if (auto msg = e.object->Decoded()) out.mutable_object()->PackFrom(*msg);
      }
      out.set_resource_version(std::to_string(e.revision));
      if (!writer->Write(out)) {
        ok = false;
        break;
      }
    }
    if (!ok) break;
  }
  auth_->ForgetStream(cut);
  resources_->Unwatch(*id);
  const grpc::Status end = cut_reason.empty()
                               ? grpc::Status::OK
                               : grpc::Status(grpc::StatusCode::UNAUTHENTICATED, cut_reason);
  Count("Watch", end, t0);
  return end;
}

grpc::Status GrpcResourceService::ExecuteAction(grpc::ServerContext* ctx,
                                                const api::ActionRequest* req,
                                                api::ActionResponse* resp) {
  const int64_t t0 = MonotonicNanos();
  auto who = Who(ctx, "ExecuteAction");
  PHOTON_GRPC_TRY("ExecuteAction", who.status());
  auto kind = KindFor(req->kind(), nullptr);
  if (!kind.ok()) {
    PHOTON_GRPC_TRY(
        "ExecuteAction",
        Malformed(*who, "action:" + req->action(),
                  RawTarget(req->kind(), req->namespace_(), req->name()), kind.status()));
  }
  std::map<std::string, std::string> params(req->params().begin(), req->params().end());
  auto r = resources_->ExecuteAction(*who, **kind,
                                     req->namespace_().empty() ? "default" : req->namespace_(),
                                     req->name(), req->action(), params);
  PHOTON_GRPC_TRY("ExecuteAction", r.status());
  *resp->mutable_operation() = *r;
  Count("ExecuteAction", grpc::Status::OK, t0);
  return grpc::Status::OK;
}

}  // namespace photon::server
