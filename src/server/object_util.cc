#include "server/object_util.h"

#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <arpa/inet.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <map>

#include "photon/compute.pb.h"
#include "photon/network.pb.h"
#include "photon/node.pb.h"
#include "photon/storage.pb.h"
#include "server/network/network_manager.h"
#include "server/ops/ops_validate.h"
#include "server/proto_json.h"
#include "server/providers/dns_validation.h"
#include "server/providers/gslb/gslb_validation.h"
#include "server/providers/loadbalancer_rules.h"
#include "server/scheduler/limits.h"
#include "server/topology/topology.h"

namespace photon::server {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

namespace {
const FieldDescriptor* Field(const Message& obj, const char* name) {
  return obj.GetDescriptor()->FindFieldByName(name);
}
}  // namespace

resource::ResourceMetadata* MutableMetadata(Message* obj) {
  return static_cast<resource::ResourceMetadata*>(
      obj->GetReflection()->MutableMessage(obj, Field(*obj, "metadata")));
}

const resource::ResourceMetadata& GetMetadata(const Message& obj) {
  return static_cast<const resource::ResourceMetadata&>(
      obj.GetReflection()->GetMessage(obj, Field(obj, "metadata")));
}

resource::ResourceStatus* MutableStatus(Message* obj) {
  auto* f = Field(*obj, "status");
  if (!f || f->message_type() != resource::ResourceStatus::descriptor()) return nullptr;
  return static_cast<resource::ResourceStatus*>(obj->GetReflection()->MutableMessage(obj, f));
}

const resource::ResourceStatus* GetStatus(const Message& obj) {
  auto* f = Field(obj, "status");
  if (!f || f->message_type() != resource::ResourceStatus::descriptor()) return nullptr;
  return &static_cast<const resource::ResourceStatus&>(obj.GetReflection()->GetMessage(obj, f));
}

std::string SpecBytes(const Message& obj) {
  auto* f = Field(obj, "spec");
  if (!f) return "";
  // Deterministic: map fields (env, ...) otherwise serialise in hash order, and an unchanged
  // spec would look changed and bump the generation.
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    obj.GetReflection()->GetMessage(obj, f).SerializeToCodedStream(&coded);
  }
  return out;
}

void CopySpec(const Message& from, Message* to) {
  auto* f = Field(from, "spec");
  if (!f) return;
  to->GetReflection()->MutableMessage(to, f)->CopyFrom(from.GetReflection()->GetMessage(from, f));
}

void CopyStatus(const Message& from, Message* to) {
  for (const char* name : {"status", "node_status"}) {
    auto* f = Field(from, name);
    if (!f) continue;
    if (from.GetReflection()->HasField(from, f)) {
      to->GetReflection()->MutableMessage(to, f)->CopyFrom(
          from.GetReflection()->GetMessage(from, f));
    } else {
      to->GetReflection()->ClearField(to, f);
    }
  }
}

Status ValidateName(const std::string& field, const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError(field + ": required");
  if (name.size() > 63) {
    return absl::InvalidArgumentError(field + ": '" + name + "' is longer than 63 characters");
  }
  // [a-z0-9]([-a-z0-9]*[a-z0-9])? without std::regex, which costs microseconds per call.
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  const bool label =
      alnum(name.front()) && alnum(name.back()) &&
      std::all_of(name.begin(), name.end(), [&](char c) { return alnum(c) || c == '-'; });
  if (!label) {
    return absl::InvalidArgumentError(
        field + ": '" + name +
        "' is not a DNS label (lower case letters, digits and '-', starting and ending with a "
        "letter or digit)");
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<Message>> ParseJsonObject(const KindInfo& kind, const std::string& json) {
  auto parsed = std::unique_ptr<Message>(kind.prototype->New());
  // Documents may carry "kind" and "apiVersion", which the message has not.
  static const std::string kAbsent = "\x01";
  std::map<std::string, std::string> envelope = {{"kind", kAbsent}, {"apiVersion", kAbsent}};
  if (auto st = JsonToProto(json, parsed.get(), &envelope); !st.ok()) {
    if (absl::StartsWith(st.message(), "malformed JSON")) return st;
    return absl::InvalidArgumentError("invalid " + kind.kind + ": " + std::string(st.message()));
  }
  if (const std::string& k = envelope["kind"]; k != kAbsent) {
    const KindInfo* found = FindKind(k);
    if (!found || found->plural != kind.plural) {
      return absl::InvalidArgumentError("kind: '" + k + "' does not match the URL's kind " +
                                        kind.kind);
    }
  }
  return parsed;
}

std::string MessageToJson(const Message& msg) { return ProtoToJson(msg); }

void AppendToJson(const KindInfo& kind, const Message& obj, std::string* out) {
  out->append("{\"kind\":\"");
  out->append(kind.kind);
  out->push_back('"');
  const size_t head = out->size();
  AppendProtoJson(obj, out);
  // `out` now ends {"kind":"X"{...}: the object's '{' becomes a separator (or "{}" is dropped).
  if (out->size() == head + 2) {
    out->resize(head);
    out->push_back('}');
  } else {
    (*out)[head] = ',';
  }
}

std::string ToJson(const KindInfo& kind, const Message& obj) {
  std::string out;
  out.reserve(512);
  AppendToJson(kind, obj, &out);
  return out;
}

namespace {

Status Positive(const std::string& field, int64_t v, bool allow_zero = true) {
  if (v < 0 || (!allow_zero && v == 0)) {
    return absl::InvalidArgumentError(field + ": must be " + (allow_zero ? "≥ 0" : "> 0") +
                                      ", got " + std::to_string(v));
  }
  return absl::OkStatus();
}

// Positive and at most `max` (scheduler/limits.h): sums of bounded quantities cannot come near
// int64, and a quantity larger than any machine is a mistake, not a request.
Status Bounded(const std::string& field, int64_t v, int64_t max, bool allow_zero = true) {
  PHOTON_RETURN_IF_ERROR(Positive(field, v, allow_zero));
  if (v > max) {
    return absl::InvalidArgumentError(field + ": must be ≤ " + std::to_string(max) + ", got " +
                                      std::to_string(v));
  }
  return absl::OkStatus();
}

// vcpu, memoryMb and diskGb of `c` (ComputeResources, Capacity or FlavorSpec) at `prefix`.
template <typename Quantities>
Status BoundedQuantities(const std::string& prefix, const Quantities& c, bool allow_zero = true) {
  PHOTON_RETURN_IF_ERROR(Bounded(prefix + "vcpu", c.vcpu(), scheduler::kMaxVcpu, allow_zero));
  PHOTON_RETURN_IF_ERROR(
      Bounded(prefix + "memoryMb", c.memory_mb(), scheduler::kMaxMemoryMb, allow_zero));
  return Bounded(prefix + "diskGb", c.disk_gb(), scheduler::kMaxDiskGb);
}

// The scrape annotations (object_util.h): a port or path without scrape "true" would be
// ignored, so it is refused like a bad value.
Status ValidateScrapeAnnotations(const compute::ComputeInstance& ci) {
  const auto& ann = ci.metadata().annotations();
  const std::string field = "metadata.annotations.";
  auto scrape = ann.find(kScrapeAnnotation);
  const bool on = scrape != ann.end() && scrape->second == "true";
  if (scrape != ann.end() && !on && scrape->second != "false") {
    return absl::InvalidArgumentError(field + kScrapeAnnotation + ": '" + scrape->second +
                                      "' is not \"true\" or \"false\"");
  }
  auto port = ann.find(kScrapePortAnnotation);
  auto path = ann.find(kScrapePathAnnotation);
  if (!on && (port != ann.end() || path != ann.end())) {
    return absl::InvalidArgumentError(field + kScrapeAnnotation +
                                      ": must be \"true\" when prometheus.io/port or "
                                      "prometheus.io/path is given");
  }
  if (!on) return absl::OkStatus();
  int64_t n = 0;
  if (port == ann.end() || !absl::SimpleAtoi(port->second, &n) || n < 1 || n > 65535) {
    return absl::InvalidArgumentError(field + kScrapePortAnnotation +
                                      ": required with prometheus.io/scrape \"true\", a port "
                                      "1-65535");
  }
  if (path != ann.end() &&
      (path->second.empty() || path->second[0] != '/' || path->second.size() > 1024 ||
       path->second.find_first_of(" ?#\r\n") != std::string::npos)) {
    return absl::InvalidArgumentError(field + kScrapePathAnnotation +
                                      ": an absolute path (\"/metrics\"), no query");
  }
  return absl::OkStatus();
}

Status ValidateCompute(const compute::ComputeInstance& ci) {
  PHOTON_RETURN_IF_ERROR(ValidateScrapeAnnotations(ci));
  const auto& spec = ci.spec();
  if (spec.backend_case() == compute::ComputeInstanceSpec::BACKEND_NOT_SET) {
    return absl::InvalidArgumentError(
        "spec: one of spec.vm, spec.container or spec.process is required");
  }
  PHOTON_RETURN_IF_ERROR(BoundedQuantities("spec.resources.", spec.resources()));
  if (spec.has_process() && spec.process().command().empty()) {
    return absl::InvalidArgumentError("spec.process.command: required");
  }
  if (spec.has_process()) {
    const auto& rp = spec.process().restart_policy();
    if (!rp.empty() && rp != "never" && rp != "on-failure" && rp != "always") {
      return absl::InvalidArgumentError("spec.process.restartPolicy: '" + rp +
                                        "' is not one of never, on-failure, always");
    }
  }
  if (spec.has_container() && spec.container().image().empty()) {
    return absl::InvalidArgumentError("spec.container.image: required");
  }
  if (spec.has_vm() && spec.vm().image().empty() && spec.vm().kernel().empty()) {
    return absl::InvalidArgumentError(
        "spec.vm: one of spec.vm.image or spec.vm.kernel is required");
  }
  if (spec.has_vm()) {
    const auto& accel = spec.vm().accel();
    if (!accel.empty() && accel != "kvm" && accel != "tcg") {
      return absl::InvalidArgumentError("spec.vm.accel: '" + accel + "' is not one of kvm, tcg");
    }
  }
  return Bounded("spec.schedule.replicas", spec.schedule().replicas(), scheduler::kMaxReplicas);
}

// Quantities of the template are refused at write time; the rest of the template is checked
// when a member is created (an invalid one puts the RegionService in ERROR).
Status ValidateRegionService(const compute::RegionService& r) {
  if (r.spec().has_load_balancer()) {
    if (!LoadBalancerProviderConfigured()) {
      return absl::InvalidArgumentError(
          "spec.loadBalancer: no load balancer provider is configured on this photon-server "
          "(providers: driver fiberlb, docs/providers.md)");
    }
    PHOTON_RETURN_IF_ERROR(ValidateLoadBalancerSpec(r.spec().load_balancer(), "spec.loadBalancer"));
  }
  PHOTON_RETURN_IF_ERROR(Bounded("spec.replicas", r.spec().replicas(), scheduler::kMaxReplicas));
  PHOTON_RETURN_IF_ERROR(
      BoundedQuantities("spec.template.resources.", r.spec().template_().resources()));
  return Bounded("spec.template.schedule.replicas", r.spec().template_().schedule().replicas(),
                 scheduler::kMaxReplicas);
}

}  // namespace

Status ValidateSpec(const KindInfo& kind, const Message& obj) {
  if (kind.kind == "ComputeInstance") {
    return ValidateCompute(static_cast<const compute::ComputeInstance&>(obj));
  }
  if (kind.kind == "Flavor") {
    const auto& f = static_cast<const compute::Flavor&>(obj);
    PHOTON_RETURN_IF_ERROR(BoundedQuantities("spec.", f.spec(), false));
  }
  if (kind.kind == "Node") {
    // An agent reports its capacity: untrusted like any other write.
    const auto& n = static_cast<const node::Node&>(obj);
    PHOTON_RETURN_IF_ERROR(BoundedQuantities("spec.capacity.", n.spec().capacity()));
  }
  if (kind.kind == "Image") {
    const auto& i = static_cast<const compute::Image&>(obj);
    // Without a source path the image is one `photon image upload` stored (docs/images.md).
    if (i.spec().source_path().empty() && i.spec().sha256().empty()) {
      return absl::InvalidArgumentError(
          "spec.sourcePath: required (or upload the image: photon image upload NAME FILE)");
    }
  }
  if (kind.kind == "Volume") {
    const auto& v = static_cast<const storage::Volume&>(obj);
    PHOTON_RETURN_IF_ERROR(
        Bounded("spec.sizeGb", v.spec().size_gb(), scheduler::kMaxDiskGb, false));
  }
  PHOTON_RETURN_IF_ERROR(prismnet::ValidateNetworkSyntax(kind, obj));
  if (kind.kind == "DnsZone") {
    const auto& z = static_cast<const network::DnsZone&>(obj);
    if (z.spec().name().empty()) return absl::InvalidArgumentError("spec.name: required");
  }
  if (kind.kind == "DnsZone" || kind.kind == "DnsRecord")
    PHOTON_RETURN_IF_ERROR(ValidateDnsSpec(obj));
  if (kind.kind == "GlobalService") PHOTON_RETURN_IF_ERROR(ValidateGlobalService(obj));
  PHOTON_RETURN_IF_ERROR(opsengine::ValidateOpsKind(kind.kind, obj));
  PHOTON_RETURN_IF_ERROR(topology::ValidateTopology(kind, obj));
  if (kind.kind == "RegionService") {
    PHOTON_RETURN_IF_ERROR(ValidateRegionService(static_cast<const compute::RegionService&>(obj)));
  }
  if (kind.kind == "LoadBalancer") {
    PHOTON_RETURN_IF_ERROR(
        ValidateLoadBalancerSpec(static_cast<const network::LoadBalancer&>(obj).spec(), "spec"));
  }
  return absl::OkStatus();
}

StatusOr<LabelSelector> LabelSelector::Parse(const std::string& text) {
  LabelSelector sel;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < text.size() && text[i] == ' ') ++i;
  };
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError("labelSelector '" + text + "': " + why);
  };
  auto read_word = [&] {
    skip_ws();
    size_t start = i;
    while (i < text.size() && (isalnum(static_cast<unsigned char>(text[i])) || text[i] == '-' ||
                               text[i] == '_' || text[i] == '.' || text[i] == '/')) {
      ++i;
    }
    return text.substr(start, i - start);
  };
  while (true) {
    skip_ws();
    if (i >= text.size()) break;
    Term t;
    if (text[i] == '!') {
      ++i;
      t.key = read_word();
      if (t.key.empty()) return bad("expected a key after '!'");
      t.op = Term::Op::kNotExists;
    } else {
      t.key = read_word();
      if (t.key.empty()) return bad("expected a key at offset " + std::to_string(i));
      skip_ws();
      if (text.compare(i, 2, "!=") == 0) {
        i += 2;
        t.op = Term::Op::kNotEq;
        t.values.push_back(read_word());
      } else if (text.compare(i, 2, "==") == 0) {
        i += 2;
        t.op = Term::Op::kEq;
        t.values.push_back(read_word());
      } else if (i < text.size() && text[i] == '=') {
        ++i;
        t.op = Term::Op::kEq;
        t.values.push_back(read_word());
      } else if (text.compare(i, 2, "in") == 0 || text.compare(i, 5, "notin") == 0) {
        t.op = text[i] == 'i' ? Term::Op::kIn : Term::Op::kNotIn;
        i += t.op == Term::Op::kIn ? 2 : 5;
        skip_ws();
        if (i >= text.size() || text[i] != '(') return bad("expected '(' after in/notin");
        ++i;
        while (true) {
          std::string v = read_word();
          if (!v.empty()) t.values.push_back(v);
          skip_ws();
          if (i < text.size() && text[i] == ',') {
            ++i;
            continue;
          }
          if (i < text.size() && text[i] == ')') {
            ++i;
            break;
          }
          return bad("unterminated value list");
        }
      } else {
        t.op = Term::Op::kExists;
      }
    }
    sel.terms_.push_back(std::move(t));
    skip_ws();
    if (i < text.size()) {
      if (text[i] != ',') return bad("expected ',' at offset " + std::to_string(i));
      ++i;
    }
  }
  return sel;
}

std::vector<std::pair<std::string, std::vector<std::string>>> LabelSelector::RequiredValues()
    const {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& t : terms_) {
    if (t.op == Term::Op::kEq || t.op == Term::Op::kIn) out.emplace_back(t.key, t.values);
  }
  return out;
}

bool LabelSelector::Matches(const google::protobuf::Map<std::string, std::string>& labels) const {
  for (const auto& t : terms_) {
    auto it = labels.find(t.key);
    bool has = it != labels.end();
    switch (t.op) {
      case Term::Op::kEq:
        if (!has || it->second != t.values[0]) return false;
        break;
      case Term::Op::kNotEq:
        if (has && it->second == t.values[0]) return false;
        break;
      case Term::Op::kExists:
        if (!has) return false;
        break;
      case Term::Op::kNotExists:
        if (has) return false;
        break;
      case Term::Op::kIn:
        if (!has || std::find(t.values.begin(), t.values.end(), it->second) == t.values.end()) {
          return false;
        }
        break;
      case Term::Op::kNotIn:
        if (has && std::find(t.values.begin(), t.values.end(), it->second) != t.values.end()) {
          return false;
        }
        break;
    }
  }
  return true;
}

}  // namespace photon::server
