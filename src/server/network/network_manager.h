// prismnet's control plane (docs/networking.md): the checks of Vpc, Subnet, SecurityGroup and
// FloatingIp that need other objects, each namespace's default VPC and subnet, and IPAM.
//
// IPAM lives in the store: an address is the key /ipam/<ns>/<subnet>/<address> (value: the
// instance's registry key), written in the instance's create transaction together with its
// Port, with a compare that the key is new; an instance's final delete removes both in its
// own transaction. So no address is handed out twice (the compare), and none outlives its
// instance whichever process dies when (one transaction each way). An in-memory view per
// subnet only picks candidates: it spares a store scan per create and keeps concurrent creates
// of one server off each other's addresses; a stale view costs a retry, never a duplicate.
//
// VPC CIDRs do not overlap in the routing domain (the whole cluster), and subnets not within
// their VPC: every Vpc and Subnet create compares and bumps one key (/network/topology), so two
// concurrent creates cannot both pass the overlap check. Deletes of a Subnet, Vpc or
// SecurityGroup first mark the object (which fails in-flight creates that read it) and then
// look for users, so a delete never strands an address, a subnet or a reference.
//
// Thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "photon/compute.pb.h"
#include "photon/network.pb.h"
#include "server/auth.h"
#include "server/kinds.h"
#include "server/network/cidr.h"
#include "store/store.h"

namespace photon::server::prismnet {

struct NetworkOptions {
  // Default VPCs are carved from here, one block of default_vpc_prefix per namespace.
  std::string default_pool = "10.0.0.0/8";
  int default_vpc_prefix = 16;
  int default_subnet_prefix = 20;  // the default subnet: the default VPC's first such block
  // FloatingIp addresses come from here ("" = none configured: FloatingIp creates refused).
  std::string floating_pool;
};

// Status keys the server owns on a networked ComputeInstance (agents' status writes keep them).
inline constexpr char kDetailVpc[] = "network.vpc";
inline constexpr char kDetailSubnet[] = "network.subnet";
inline constexpr char kDetailCidr[] = "network.cidr";
inline constexpr char kDetailAddress[] = "network.address";
inline constexpr char kDetailMac[] = "network.mac";
inline constexpr char kDetailPort[] = "network.port";
inline constexpr char kDetailMode[] = "network.mode";  // "host" for hostNetwork instances
// Condition on the instance: True once it has its address; False with reason SubnetExhausted
// while it waits for one (the scheduler leaves it unplaced meanwhile).
inline constexpr char kNetworkReady[] = "NetworkReady";
inline constexpr char kSubnetExhausted[] = "SubnetExhausted";
inline constexpr char kTopologyKey[] = "/network/topology";
inline constexpr char kIpamRoot[] = "/ipam/";
// A floating IP's address is the key /fipam/<address> (value: the FloatingIp's registry key).
inline constexpr char kFloatingIpamRoot[] = "/fipam/";

// True while the instance waits for an address (the scheduler must not place it yet).
bool AwaitingAddress(const compute::ComputeInstance& ci);
// The locally administered MAC of a port, from its instance id: 02:xx:xx:xx:xx:xx.
std::string MacFor(const std::string& instance_id);
std::string IpamPrefix(const std::string& ns, const std::string& subnet);
// Syntax of network specs (no other object needed); called by ValidateSpec.
Status ValidateNetworkSyntax(const KindInfo& kind, const google::protobuf::Message& obj);

// What a create adds to its transaction, and the address it holds until the commit's outcome.
struct CreatePlan {
  std::vector<store::Compare> compares;
  std::vector<store::TxnOp> ops;
  std::string pool;  // "ns/subnet" of the address held, "" for none
  uint32_t address = 0;
};

class NetworkManager {
 public:
  NetworkManager(store::Store* store, NetworkOptions options);
  // Fails when the options do not describe a usable pool (naming the option).
  Status Init();

  // Kinds whose create goes through Plan (and retries when its compares fail).
  static bool Plans(const KindInfo& kind);
  // Checks a new object against the others and fills `plan`; may fill server-owned fields
  // (a subnet's default gateway, an instance's network status). FloatingIps are refused.
  Status Plan(const Principal& who, const KindInfo& kind, const std::string& ns,
              google::protobuf::Message* object, CreatePlan* plan);
  // After the create's commit (or its failure): the held address is kept or given back.
  void Finish(const CreatePlan& plan, bool committed);

  // Spec updates: immutable fields, references. May restore fields the client left empty.
  Status CheckUpdate(const KindInfo& kind, const std::string& ns, google::protobuf::Message* in,
                     const google::protobuf::Message& stored);
  // An agent's status write on an instance (replaces CopyStatus): the server's network fields
  // stay, and the VPC address stays status.addresses[0].
  static void MergeStatus(const KindInfo& kind, const google::protobuf::Message& from,
                          google::protobuf::Message* to);
  // The VPC address first in status.addresses whatever a controller wrote (eviction clears
  // them).
  static void NormalizeStatus(const KindInfo& kind, google::protobuf::Message* object);

  // Before a delete of a Subnet, Vpc, SecurityGroup or Port: refuses one still in use. May
  // mark the object first (see above); returns the revision the delete must compare with.
  StatusOr<int64_t> PrepareDelete(const KindInfo& kind, const std::string& ns,
                                  const std::string& name, const google::protobuf::Message& stored,
                                  int64_t revision);
  // The final delete of an instance: its Port and address go in the same transaction.
  static void AddReleaseOps(const KindInfo& kind, const google::protobuf::Message& stored,
                            store::TxnRequest* txn);
  // The same transaction also dissociates the instance's FloatingIp (as AWS disassociates an
  // Elastic IP when its instance terminates): compared on the FloatingIp's and the Port's
  // revisions, so an associate racing the delete makes one of them retry.
  Status AddFloatingIpReleaseOps(const KindInfo& kind, const google::protobuf::Message& stored,
                                 store::TxnRequest* txn);
  // After that transaction committed.
  void Released(const KindInfo& kind, const google::protobuf::Message& stored);
  // A controller's write of an instance: its Port follows metadata.agentId in the same
  // transaction (compared on the Port's revision).
  Status AddPlacementOps(const KindInfo& kind, const google::protobuf::Message& object,
                         store::TxnRequest* txn);

  // For the retry of instances waiting for an address: plans an address for an existing
  // instance (its network status filled in `ci`); NOT_FOUND-free: RESOURCE_EXHAUSTED when
  // the subnet is still full.
  Status PlanAddress(const std::string& ns, compute::ComputeInstance* ci, CreatePlan* plan);
  // Called when an address was given back (wakes the retry).
  void SetOnRelease(std::function<void()> f) { on_release_ = std::move(f); }

 private:
  struct SubnetRef {
    network::Subnet subnet;
    int64_t revision = 0;
    Cidr cidr;
    uint32_t gateway = 0;
    std::string vpc_cidr;
  };
  struct Pool {
    std::string subnet_id;
    Cidr cidr;
    uint32_t gateway = 0;
    std::vector<bool> taken;       // by offset from cidr.base
    std::set<uint32_t> in_flight;  // held by creates not yet committed
    uint64_t cursor = 0;
    int64_t loaded_ns = 0;  // monotonic time of the last load from the store
  };

  Status PlanVpc(const std::string& ns, network::Vpc* vpc, CreatePlan* plan);
  Status PlanSubnet(const std::string& ns, network::Subnet* subnet, CreatePlan* plan);
  Status PlanSecurityGroup(const std::string& ns, network::SecurityGroup* sg, CreatePlan* plan);
  Status PlanInstance(const std::string& ns, compute::ComputeInstance* ci, CreatePlan* plan);
  // Floating IPs (floating_ips.cc).
  Status InitFloatingPool();
  Status PlanFloatingIp(const std::string& ns, network::FloatingIp* fip, CreatePlan* plan);
  StatusOr<uint32_t> PickFloatingAddress(const std::string& wanted);
  // Points the instance's Port at the floating IP (compared on the Port's revision) and fills
  // the FloatingIp's status; refuses an instance that cannot take it, naming spec.instance.
  Status Associate(const std::string& ns, network::FloatingIp* fip, CreatePlan* plan);
  // Clears the floating IP from the Port of `instance` when it still carries it.
  Status Dissociate(const std::string& ns, const std::string& instance, const std::string& address,
                    CreatePlan* plan);
  Status FloatingIpUpdateOps(const network::FloatingIp& updated, store::TxnRequest* txn);
  StatusOr<int64_t> PrepareFloatingIpDelete(const std::string& ns, const network::FloatingIp& fip,
                                            int64_t revision);
  // A placement moves the instance's floating IP's status.details.node along with its Port.
  Status FloatingIpFollows(const network::Port& port, const std::string& node,
                           store::TxnRequest* txn);
  StatusOr<SubnetRef> ResolveSubnet(const std::string& ns, const compute::NetworkAttachment& net,
                                    CreatePlan* plan);
  StatusOr<SubnetRef> ReadSubnet(const std::string& field, const std::string& ns,
                                 const std::string& name);
  StatusOr<SubnetRef> EnsureDefault(const std::string& ns);
  Status CreateDefault(const std::string& ns);
  // Every VPC in the routing domain with its revision ("ns/name" → cidr).
  StatusOr<std::map<std::string, Cidr>> AllVpcs();
  StatusOr<int64_t> TopologyRevision(CreatePlan* plan);
  Status CheckVpcOverlap(const std::string& self, const Cidr& cidr,
                         const std::map<std::string, Cidr>& vpcs);
  Status CheckSecurityGroups(const std::string& field, const std::string& ns,
                             const std::vector<std::string>& names, const std::string& self,
                             CreatePlan* plan);
  StatusOr<uint32_t> TakeAddress(const std::string& ns, const SubnetRef& s,
                                 const std::string& fixed, const std::string& owner_key);
  StatusOr<Pool*> LoadPool(const std::string& ns, const SubnetRef& s, bool force);
  void GiveBack(const std::string& pool, uint32_t address);
  StatusOr<std::vector<std::string>> UsersOf(const KindInfo& kind, const std::string& ns,
                                             const std::string& name);

  store::Store* store_;
  NetworkOptions options_;
  Cidr pool_;
  std::optional<Cidr> floating_pool_;
  std::mutex mu_;
  std::map<std::string, Pool> pools_;  // "ns/subnet" → view of its addresses
  std::function<void()> on_release_;
};

}  // namespace photon::server::prismnet
