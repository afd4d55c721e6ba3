#include "agent/floating_ips.h"

#include <chrono>
#include <thread>

#include "agent/config.h"
#include "spdlog/spdlog.h"

namespace photon::agent {
using json = nlohmann::json;

StatusOr<FloatingIpOptions> FloatingIpOptionsFrom(const AgentOptions& o) {
  FloatingIpOptions f;
  f.node_name = o.name;
  f.host_netns = o.host_netns;
  f.snat_interface = o.snat_interface;
  f.snat_address = o.snat_address;
  f.resync_seconds = o.resync_seconds;
  std::string item;
  for (size_t i = 0; i <= o.nat_cloud_cidrs.size(); ++i) {
    if (i == o.nat_cloud_cidrs.size() || o.nat_cloud_cidrs[i] == ',') {
      if (!item.empty()) f.cloud_cidrs.push_back(item);
      item.clear();
    } else if (o.nat_cloud_cidrs[i] != ' ') {
      item += o.nat_cloud_cidrs[i];
    }
  }
  net::NatSpec check = FloatingIps::Want(f, {});
  if (Status s = net::ValidateNatSpec(check); !s.ok() && !f.cloud_cidrs.empty()) {
    return absl::InvalidArgumentError("nat-cloud-cidrs/snat-interface/snat-address: " +
                                      std::string(s.message()));
  }
  return f;
}

FloatingIps::FloatingIps(FloatingIpOptions options, const Informer* ports, MetricsRegistry* metrics)
    : options_(std::move(options)),
      ports_(ports),
      nat_(net::NatOptions{.host_netns = options_.host_netns}) {
  applies_ = metrics->GetCounter("photon_agent_nat_applies_total",
                                 "Changes of the node's NAT table (floating IPs, SNAT)");
  failures_ = metrics->GetCounter("photon_agent_nat_failures_total",
                                  "Failed or refused applies of the node's NAT");
  mapped_ = metrics->GetGauge("photon_agent_floating_ips", "Floating IPs mapped on this node");
}

net::NatSpec FloatingIps::Want(const FloatingIpOptions& o, const std::vector<json>& ports) {
  net::NatSpec spec;
  spec.cloud_cidrs = o.cloud_cidrs;
  spec.snat = !o.snat_interface.empty() || !o.snat_address.empty();
  spec.snat_interface = o.snat_interface;
  spec.snat_address = o.snat_address;
  for (const auto& p : ports) {
    if (!p.contains("spec") || !p["spec"].is_object()) continue;
    const json& s = p["spec"];
    const std::string fip = s.value("floatingIp", "");
    const std::string ip = s.value("ipAddress", "");
    if (fip.empty() || ip.empty()) continue;
    // The informer selects this node's Ports; a Port moving away is a change like any other.
    if (p.contains("metadata") && p["metadata"].value("agentId", "") != o.node_name) continue;
    spec.floating_ips.push_back({fip, ip});
  }
  return spec;
}

Status FloatingIps::Sync() {
  std::vector<json> ports;
  for (const auto& key : ports_->Keys()) {
    if (auto p = ports_->Get(key)) ports.push_back(std::move(*p));
  }
  const net::NatSpec spec = Want(options_, ports);
  mapped_->Set(static_cast<double>(spec.floating_ips.size()));
  if (!spec.snat && spec.floating_ips.empty()) {
    if (opened_ && applied_.empty()) return absl::OkStatus();
    PHOTON_RETURN_IF_ERROR(nat_.Clear());
    applied_.clear();
    applies_->Inc();
    return absl::OkStatus();
  }
  if (options_.cloud_cidrs.empty()) {
    // Without the cloud's ranges every packet between VPCs would be rewritten too.
    return absl::FailedPreconditionError(
        "node " + options_.node_name + " has " + std::to_string(spec.floating_ips.size()) +
        " floating IP(s) to map but no --nat-cloud-cidrs (the cloud's VPC ranges)");
  }
  const std::string rendered = net::RenderNatRuleset("photon_nat", spec);
  if (opened_ && rendered == applied_) return absl::OkStatus();
  PHOTON_RETURN_IF_ERROR(nat_.Apply(spec));
  applied_ = rendered;
  applies_->Inc();
  spdlog::info("network: NAT applied ({} floating IPs, snat {})", spec.floating_ips.size(),
               spec.snat ? "on" : "off");
  return absl::OkStatus();
}

Status FloatingIps::Open() {
  Status s = Sync();
  opened_ = true;
  if (!s.ok()) {
    failures_->Inc();
    spdlog::error("network: NAT: {}", s.ToString());
  }
  // A start is not refused for this: the instances' ports work without NAT, and the next
  // change of a Port (or the resync) applies again.
  return absl::OkStatus();
}

void FloatingIps::Kick() {
  {
    std::lock_guard<std::mutex> l(mu_);
    dirty_ = true;
  }
  cv_.notify_one();
}

void FloatingIps::Run(const std::atomic<bool>* stop) {
  std::string last_error;
  while (!*stop) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, std::chrono::seconds(options_.resync_seconds), [&] { return dirty_; });
      dirty_ = false;
    }
    if (*stop) return;
    Status s = Sync();
    if (!s.ok()) {
      failures_->Inc();
      if (s.ToString() != last_error) spdlog::error("network: NAT: {}", s.ToString());
      last_error = s.ToString();
      // A kernel refusal is retried soon; a missing option waits for the resync.
      if (s.code() != absl::StatusCode::kFailedPrecondition) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        Kick();
      }
    } else {
      last_error.clear();
    }
  }
}

}  // namespace photon::agent
