// L7 VIPs on the loopback and their BGP routes; see l7_vips.h.
#include "fiberlb/l7_vips.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "agent/net/exec.h"
#include "agent/net/ipv4.h"

namespace photon::fiberlb {
namespace {

using agent::net::ExecOk;
using nlohmann::json;

StatusOr<json> IpJson(const std::vector<std::string>& argv) {
  PHOTON_ASSIGN_OR_RETURN(std::string out, ExecOk(argv, {}));
  json j = json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return absl::InternalError(argv[2] + ": " + out);
  return j;
}

}  // namespace

StatusOr<std::unique_ptr<L7Vips>> L7Vips::Open(int route_protocol) {
  std::unique_ptr<L7Vips> v(new L7Vips(route_protocol));
  PHOTON_ASSIGN_OR_RETURN(json links, IpJson({"ip", "-j", "addr", "show", "dev", "lo"}));
  for (const auto& link : links) {
    for (const auto& a : link.value("addr_info", json::array())) {
      if (a.value("label", "") == kL7VipLabel) v->held_.insert(a.value("local", ""));
    }
  }
  PHOTON_ASSIGN_OR_RETURN(json routes, IpJson({"ip", "-j", "route", "show", "type", "prohibit",
                                               "proto", std::to_string(route_protocol)}));
  for (const auto& r : routes) v->announced_.insert(r.value("dst", ""));
  v->held_.erase("");
  v->announced_.erase("");
  if (!v->held_.empty() || !v->announced_.empty()) {
    spdlog::info("l7 vips: adopted {} on the loopback, {} announced", v->held_.size(),
                 v->announced_.size());
  }
  return v;
}

Status L7Vips::Batch(const std::string& commands) {
  if (commands.empty()) return absl::OkStatus();
  agent::net::ExecOptions o;
  o.stdin_data = commands;
  return ExecOk({"ip", "-batch", "-"}, o).status();
}

Status L7Vips::Hold(const std::set<std::string>& vips) {
  std::lock_guard lock(mu_);
  std::string add;
  for (const auto& vip : vips) {
    if (held_.contains(vip)) continue;
    if (!agent::net::ParseIpv4(vip).ok()) {
      return absl::InvalidArgumentError("'" + vip + "' is not an IPv4 address");
    }
    absl::StrAppend(&add, "address replace ", vip, "/32 dev lo label ", kL7VipLabel, "\n");
  }
  if (add.empty()) return absl::OkStatus();
  PHOTON_RETURN_IF_ERROR(Batch("link set lo up\n" + add));
  held_.insert(vips.begin(), vips.end());
  return absl::OkStatus();
}

Status L7Vips::ReleaseExcept(const std::set<std::string>& keep) {
  std::lock_guard lock(mu_);
  std::string withdraw, remove;
  std::set<std::string> gone;
  for (const auto& vip : held_) {
    if (keep.contains(vip)) continue;
    gone.insert(vip);
    absl::StrAppend(&remove, "address del ", vip, "/32 dev lo\n");
  }
  for (const auto& vip : announced_) {
    if (!keep.contains(vip)) {
      absl::StrAppend(&withdraw, "route del prohibit ", vip, "/32 proto ", route_protocol_, "\n");
    }
  }
  PHOTON_RETURN_IF_ERROR(Batch(withdraw));
  std::erase_if(announced_, [&](const std::string& v) { return !keep.contains(v); });
  PHOTON_RETURN_IF_ERROR(Batch(remove));
  for (const auto& vip : gone) held_.erase(vip);
  return absl::OkStatus();
}

Status L7Vips::Announce(const std::set<std::string>& want) {
  std::lock_guard lock(mu_);
  std::string withdraw, announce;
  std::set<std::string> next;
  for (const auto& vip : announced_) {
    if (!want.contains(vip) || !held_.contains(vip)) {
      absl::StrAppend(&withdraw, "route del prohibit ", vip, "/32 proto ", route_protocol_, "\n");
      spdlog::info("l7 vips: withdrawing {}", vip);
    }
  }
  for (const auto& vip : want) {
    if (!held_.contains(vip)) continue;  // never announce what this node would not accept
    next.insert(vip);
    if (!announced_.contains(vip)) {
      absl::StrAppend(&announce, "route replace prohibit ", vip, "/32 proto ", route_protocol_,
                      "\n");
      spdlog::info("l7 vips: announcing {}", vip);
    }
  }
  PHOTON_RETURN_IF_ERROR(Batch(withdraw));
  std::erase_if(announced_, [&](const std::string& v) { return !next.contains(v); });
  PHOTON_RETURN_IF_ERROR(Batch(announce));
  announced_ = std::move(next);
  return absl::OkStatus();
}

std::set<std::string> L7Vips::held() const {
  std::lock_guard lock(mu_);
  return held_;
}

std::set<std::string> L7Vips::announced() const {
  std::lock_guard lock(mu_);
  return announced_;
}

}  // namespace photon::fiberlb
