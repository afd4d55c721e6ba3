// Prometheus next to the operations pipeline (docs/operations.md "Prometheus"):
//   POST /api/v2/alerts               Alertmanager API v2 bodies from Prometheus → Events
//   GET  /v1/ops/prometheus/targets   HTTP service discovery: photon-server, agents, daemons,
//                                     instances that serve metrics of their own
#include <nlohmann/json.hpp>
#include <optional>

#include "common/util.h"
#include "photon/compute.pb.h"
#include "photon/node.pb.h"
#include "server/object_util.h"
#include "server/ops/ops_engine.h"
#include "server/rest_gateway.h"

namespace photon::server::opsengine {

using event::OpsEvent;
using nlohmann::json;

namespace {

// One Alertmanager v2 alert as an event: firing is Critical (or Warning when its `severity`
// label says warning/info), ended (endsAt passed) is Success. Keyed by alertname and labels,
// so Prometheus re-sending a firing alert only counts.
StatusOr<std::pair<std::string, event::Event>> AlertToEvent(const json& a, size_t i, int64_t now) {
  const std::string field = "[" + std::to_string(i) + "]";
  if (!a.is_object() || !a.contains("labels") || !a["labels"].is_object()) {
    return absl::InvalidArgumentError(field + ".labels: required (an object)");
  }
  const json& labels = a["labels"];
  if (!labels.contains("alertname") || !labels["alertname"].is_string()) {
    return absl::InvalidArgumentError(field + ".labels.alertname: required");
  }
  if (labels.size() > 64) return absl::InvalidArgumentError(field + ".labels: at most 64");
  event::Event ev;
  OpsEvent* o = ev.mutable_spec()->mutable_ops_event();
  for (const auto& [k, v] : labels.items()) {
    if (!v.is_string()) return absl::InvalidArgumentError(field + ".labels." + k + ": a string");
    (*o->mutable_labels())[k] = v.get<std::string>();
  }
  o->set_check(labels["alertname"].get<std::string>());
  if (labels.contains("node")) o->set_node(labels["node"].get<std::string>());
  const std::string severity = labels.value("severity", "");
  const std::string ends = a.value("endsAt", "");
  const bool ended = !ends.empty() && ParseMs(ends) > 0 && ParseMs(ends) <= now;
  o->set_severity(ended ? OpsEvent::SUCCESS
                        : (severity == "warning" || severity == "info" ? OpsEvent::WARNING
                                                                       : OpsEvent::CRITICAL));
  const json ann = a.value("annotations", json::object());
  std::string out = ann.is_object() ? ann.value("summary", ann.value("description", "")) : "";
  if (out.empty()) out = o->check();
  o->set_output(out.substr(0, 4096));
  o->set_reissue_duration_seconds(3600);
  // nlohmann's objects iterate in key order: the dump is the label set's fingerprint.
  o->set_dedup_key("prometheus/" + o->check() + "/" + Sha256Hex(labels.dump()).substr(0, 16));
  ev.mutable_spec()->set_source("prometheus");
  std::string ns = labels.value("namespace", "");
  if (ns.empty()) ns = "system";
  return std::make_pair(ns, std::move(ev));
}

// A daemon's discovery group: host:port of its endpoint URL (where its /metrics is), the
// scheme when https, and labels naming it. nullopt for a URL without a host.
std::optional<json> DaemonTarget(const std::string& driver, const std::string& endpoint) {
  std::string rest = endpoint;
  std::string scheme = "http";
  if (auto p = rest.find("://"); p != std::string::npos) {
    scheme = rest.substr(0, p);
    rest = rest.substr(p + 3);
  }
  const std::string hostport = rest.substr(0, rest.find('/'));
  if (hostport.empty()) return std::nullopt;
  json labels = {{"job", driver}, {"daemon", driver}, {"endpoint", endpoint}};
  if (scheme == "https") labels["__scheme__"] = "https";
  return json{{"targets", {hostport}}, {"labels", labels}};
}

// The host of "host:port" (an IPv6 address keeps its brackets).
std::string HostOf(const std::string& hostport) {
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos || hostport.find(']', colon) != std::string::npos) {
    return hostport;
  }
  return hostport.substr(0, colon);
}

// A RUNNING instance that asks to be scraped (annotations prometheus.io/scrape "true" and
// prometheus.io/port, checked when it is written): its VPC address, or its node's for one on
// the host network, with labels naming it. nullopt when it has no address yet.
std::optional<json> InstanceTarget(const compute::ComputeInstance& ci,
                                   const std::map<std::string, std::string>& node_hosts) {
  const auto& ann = ci.metadata().annotations();
  auto scrape = ann.find(kScrapeAnnotation);
  auto port = ann.find(kScrapePortAnnotation);
  if (scrape == ann.end() || scrape->second != "true" || port == ann.end()) return std::nullopt;
  if (ci.status().phase() != resource::ResourceStatus::RUNNING) return std::nullopt;
  std::string host;
  if (ci.spec().network().host_network()) {
    auto n = node_hosts.find(ci.metadata().agent_id());
    if (n != node_hosts.end()) host = n->second;
  } else if (ci.status().addresses_size() > 0) {
    host = ci.status().addresses(0);
  }
  if (host.empty()) return std::nullopt;
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  json labels = {{"job", "photon-instance"},
                 {"namespace", ci.metadata().namespace_()},
                 {"instance", ci.metadata().name()},
                 {"node", ci.metadata().agent_id()}};
  if (auto path = ann.find(kScrapePathAnnotation); path != ann.end()) {
    labels["__metrics_path__"] = path->second;
  }
  return json{{"targets", {host + ":" + port->second}}, {"labels", labels}};
}

}  // namespace

HttpResponse OpsEngine::PrometheusAlerts(const HttpRequest& req, const Principal& who) {
  json body = json::parse(req.body, nullptr, false);
  if (!body.is_array()) {
    return ErrorResponse(absl::InvalidArgumentError(
        "body: want a JSON array of alerts (Alertmanager API v2 postableAlerts)"));
  }
  // Everything is checked before anything is taken: a bad batch is refused whole, and
  // Prometheus sending it again finds the taken ones deduplicated anyway.
  std::vector<std::pair<std::string, event::Event>> events;
  const int64_t now = NowMs();
  for (size_t i = 0; i < body.size(); ++i) {
    auto e = AlertToEvent(body[i], i, now);
    if (!e.ok()) return ErrorResponse(e.status());
    events.push_back(std::move(*e));
  }
  for (auto& [ns, ev] : events) {
    auto r = Ingest(who, ns, std::move(ev));
    if (!r.ok()) return ErrorResponse(r.status());
  }
  return HttpResponse::Json(200, "{}");
}

// Prometheus http_sd_configs: photon-server as the caller reached it, each node's agent at
// the address its Node advertises, the daemons behind the service providers, and instances
// whose workloads serve metrics of their own (their usage comes through their node's agent).
HttpResponse OpsEngine::PrometheusTargets(const HttpRequest& req, const Principal& who) {
  if (!who.IsAdmin()) {
    return ErrorResponse(absl::PermissionDeniedError(
        "'" + who.name + "' may not read the cluster's scrape targets (admins only)"));
  }
  json out = json::array();
  const std::string host = req.Header("host");
  if (!host.empty()) {
    out.push_back({{"targets", {host}}, {"labels", {{"job", "photon-server"}}}});
  }
  std::map<std::string, std::string> node_hosts;  // node name -> the host of its address
  const std::string prefix = RegistryPrefix("nodes");
  for (const auto& o :
       resources_->cache()->List(prefix, store::PrefixEnd(prefix), 0, nullptr).items) {
    node::Node n;
    if (!n.ParseFromString(o->value()) || n.spec().address().empty()) continue;
    node_hosts[n.metadata().name()] = HostOf(n.spec().address());
    out.push_back({{"targets", {n.spec().address()}},
                   {"labels", {{"job", "photon-agent"}, {"node", n.metadata().name()}}}});
  }
  for (const auto& [driver, endpoint] : daemon_endpoints_) {
    if (auto t = DaemonTarget(driver, endpoint)) out.push_back(std::move(*t));
  }
  const std::string instances = RegistryPrefix("computeinstances");
  for (const auto& o :
       resources_->cache()->List(instances, store::PrefixEnd(instances), 0, nullptr).items) {
    compute::ComputeInstance ci;
    if (!ci.ParseFromString(o->value())) continue;
    if (auto t = InstanceTarget(ci, node_hosts)) out.push_back(std::move(*t));
  }
  return HttpResponse::Json(200, out.dump());
}

}  // namespace photon::server::opsengine
