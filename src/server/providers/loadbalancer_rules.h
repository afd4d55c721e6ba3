// The API's rules for LoadBalancers (seed 003: a RegionService owns its LoadBalancer, which is
// created and deleted only with it) and the checks of a load balancer spec, shared by the
// RegionService's spec.loadBalancer and the LoadBalancer object the server derives from it.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "common/status.h"
#include "photon/network.pb.h"
#include "server/auth.h"
#include "server/kinds.h"
#include "store/store.h"

namespace photon::server {

// Whether this photon-server has a provider that realizes loadbalancers (driver fiberlb).
// Set once at start-up from the config; without one a spec.loadBalancer is refused, so no
// LoadBalancer waits for a provider that does not exist.
void SetLoadBalancerProviderConfigured(bool configured);
bool LoadBalancerProviderConfigured();
// Whether that provider also has L4 LB nodes and a VIP pool (fiberlb `vip_pool`): without
// them `type: L4` is refused.
void SetLoadBalancerL4Configured(bool configured);
bool LoadBalancerL4Configured();

// INVALID_ARGUMENT naming the field (`where` is its prefix, "spec.loadBalancer"): 1..16
// listeners with distinct ports 1..65535 and the health check's bounds. L7: TCP, HTTP or HTTPS;
// an HTTPS listener's certificates parse, and a private key given matches its certificate (a
// key given by reference is checked by SealLoadBalancerKeys). L4 (stateless, DSR): TCP or UDP,
// no L7 options (routes, certificates, http checks), targetPort 0 or the port itself (the
// member serves the VIP's port), a UDP listener only with health check none.
Status ValidateLoadBalancerSpec(const network::LoadBalancerSpec& spec, const std::string& where);

// The private keys of HTTPS listeners are write-only. On a create or spec update of a
// RegionService (spec.loadBalancer) or LoadBalancer, each certificate's privateKey is stored
// in `store` under /secrets/loadbalancer-keys/<namespace>/<sha256 of the key>, outside the
// registry (so no GET, list or watch returns it), and replaced in the object by
// privateKeyRef "sha256:<hex>". A certificate given with privateKeyRef only (an object read
// back and written again) keeps that key, which must be stored in the same namespace and match
// the certificate, else INVALID_ARGUMENT naming the field. No-op for other kinds.
Status SealLoadBalancerKeys(store::Store* store, const KindInfo& kind,
                            google::protobuf::Message* object);

// Where the fiberlb provider reads the keys back from (set by the leader's LoadBalancerOwner).
void SetLoadBalancerKeyStore(store::Store* store);
// That store (the VIP pool keeps its allocations there too); nullptr before the owner starts.
store::Store* LoadBalancerKeyStore();
// The PEM key of `ref` ("sha256:<hex>") in namespace `ns`; NOT_FOUND when missing.
StatusOr<std::string> LoadBalancerKey(const std::string& ns, const std::string& ref);

// The key references ("<namespace>/sha256:<hex>") of a RegionService's spec.loadBalancer or a
// LoadBalancer's spec, added to *refs. No-op for other kinds.
void CollectLoadBalancerKeyRefs(const KindInfo& kind, const google::protobuf::Message& object,
                                std::set<std::string>* refs);

// Deletes sealed keys that no object refers to any more (their RegionService and LoadBalancer
// are gone, or no longer name them). A key is deleted only after it was seen unreferenced and
// unchanged for `grace` (compared on its mod revision in the delete's transaction): a create
// seals its key before the object itself is written, and a write that refers to a stored key
// writes it again, so a key about to be used is never collected. The store's history keeps
// the old value until it is compacted. Thread-compatible (the owner's one worker calls it).
class LoadBalancerKeyCollector {
 public:
  explicit LoadBalancerKeyCollector(std::chrono::milliseconds grace) : grace_(grace) {}
  // `referenced`: every object's references (CollectLoadBalancerKeyRefs). Returns how many
  // keys it deleted.
  StatusOr<int> Sweep(store::Store* store, const std::set<std::string>& referenced);

 private:
  struct Unreferenced {
    int64_t mod_revision = 0;
    std::chrono::steady_clock::time_point since;
  };
  const std::chrono::milliseconds grace_;
  std::map<std::string, Unreferenced> unreferenced_;  // store key → when first seen so
};

// Refuses a create, spec update or delete of a LoadBalancer by anyone but the system's
// controllers, naming the rule. OK for other kinds.
Status CheckLoadBalancerOwnership(const Principal& who, const KindInfo& kind, const char* verb);

}  // namespace photon::server
