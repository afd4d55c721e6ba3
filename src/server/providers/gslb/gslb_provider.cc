// See gslb_provider.h.
#include "server/providers/gslb/gslb_provider.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <tuple>

#include "common/tcp_probe.h"
#include "photon/compute.pb.h"
#include "photon/network.pb.h"
#include "server/object_util.h"
#include "server/providers/daemon_client.h"
#include "server/providers/flashdns/flashdns_provider.h"
#include "server/watch_cache.h"

namespace photon::server {

namespace {

using nlohmann::json;
using Phase = resource::ResourceStatus;
using Clock = std::chrono::steady_clock;

// One vantage point: photon-server itself (api == nullptr) or a flashdns's /v1/probe.
struct Checker {
  std::string name;
  std::unique_ptr<DaemonClient> api;
};

// A member with its VIP, ready to be checked.
struct Target {
  std::string label;    // the RegionService's name, or the address
  std::string address;  // the VIP
  int port = 0;
  std::string region;
  // A RegionService member whose LoadBalancer has no member UP: its VIP still accepts
  // connections (HAProxy listens), but nothing serves behind it, so it is down whatever the
  // checkers see. "" when some member is UP, or for a member given by address.
  std::string no_backend;
  std::string key() const { return address + ":" + std::to_string(port); }
};

// One checker's view of one VIP.
struct Vote {
  int successes = 0, failures = 0;
  bool down = false;      // starts up, as flashdns's checked records do
  std::string last;       // last result ("ok", why it failed; "" before the first answer)
  bool answered = false;  // the checker answered in the last round (a dead checker votes nothing)
};

// A flashdns record of ours: (name, type, ttl, data).
using Record = std::tuple<std::string, std::string, uint32_t, std::string>;

using Votes = std::map<std::string, std::vector<Vote>>;  // Target::key() → one per checker

// What the last sync left in flashdns (the controller's thread only).
struct SyncState {
  std::string synced_zone;
  std::set<Record> synced;  // what flashdns held of ours after the last sync
  Clock::time_point synced_at{};
};

struct Settings {
  int port, interval_ms, timeout_ms, rise, fall;
  uint32_t ttl;
};

// A GlobalService's members as the checker thread checks them (under the provider's mutex).
struct Checked {
  std::vector<Target> targets;
  Settings set{};
  Votes votes;
  Clock::time_point next_check{};
};

Settings SettingsOf(const network::GlobalServiceSpec& spec) {
  const auto& hc = spec.health_check();
  auto or_default = [](int v, int d) { return v > 0 ? v : d; };
  const int interval = or_default(hc.interval_ms(), 1000);
  return Settings{hc.port(),
                  interval,
                  or_default(hc.timeout_ms(), std::min(500, interval)),
                  or_default(hc.rise(), 2),
                  or_default(hc.fall(), 2),
                  static_cast<uint32_t>(or_default(spec.ttl(), 5))};
}

std::string TypeOf(const std::string& address) {
  return address.find(':') == std::string::npos ? "A" : "AAAA";
}

// The fiberlb provider's status: details["member.<replica>"] = "<address> UP..." for each
// RUNNING replica in the pool (docs/providers.md), none when no replica runs.
bool HasMemberUp(const network::LoadBalancer& lb) {
  for (const auto& [key, value] : lb.status().details()) {
    if (key.rfind("member.", 0) != 0) continue;
    const size_t space = value.find(' ');
    if (space != std::string::npos && value.compare(space + 1, 2, "UP") == 0) return true;
  }
  return false;
}

// How long a sync trusts what it wrote before reading the zone again (a record removed
// behind photon's back comes back within this).
constexpr auto kFullSyncEvery = std::chrono::seconds(30);

class GslbProvider : public ServiceProvider {
 public:
  GslbProvider(std::unique_ptr<DaemonClient> api, std::vector<Checker> checkers, int quorum,
               std::string owner)
      : api_(std::move(api)),
        checkers_(std::move(checkers)),
        quorum_(quorum),
        owner_(std::move(owner)) {
    // The checks run here, not on the controller's thread: a round waits up to timeoutMs for
    // a VIP that does not answer, and DNS records and buckets must not wait behind it.
    thread_ = std::thread([this] { CheckLoop(); });
  }
  ~GslbProvider() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  std::string driver() const override { return "gslb"; }
  std::vector<std::string> kinds() const override { return {"globalservices"}; }

  Observed Apply(const google::protobuf::Message& object, const ObjectLookup& lookup) override {
    if (object.GetDescriptor() != network::GlobalService::descriptor()) {
      Observed o;
      o.phase = Phase::ERROR;
      o.message = "gslb provider: cannot realize " + object.GetDescriptor()->name();
      return o;
    }
    return ApplyService(static_cast<const network::GlobalService&>(object), lookup);
  }

  Status Remove(const ManagedRef& ref) override {
    {
      std::lock_guard lock(mu_);
      checked_.erase(ref.ns + "/" + ref.name);
    }
    synced_.erase(ref.ns + "/" + ref.name);
    auto zone = ref.details.find("zone");
    if (zone == ref.details.end() || zone->second.empty()) return absl::OkStatus();
    return RemoveRecords(zone->second, Tag(ref.ns, ref.name));
  }

  StatusOr<std::vector<ManagedRef>> ListManaged() override {
    DaemonReply list = api_->Call("GET", "/v1/zones");
    PHOTON_RETURN_IF_ERROR(api_->AsStatus(list, "list zones"));
    std::vector<ManagedRef> out;
    const std::string zones_prefix = owner_ + ":dnszones/", ours = owner_ + ":globalservices/";
    for (const auto& z : list.body.value("zones", json::array())) {
      if (z.value("owner", "").rfind(zones_prefix, 0) != 0) continue;  // only DnsZones hold ours
      const std::string zone = z.value("name", "");
      DaemonReply got = api_->Call("GET", "/v1/zones/" + zone);
      if (got.reached && got.status == 404) continue;
      PHOTON_RETURN_IF_ERROR(api_->AsStatus(got, "get zone " + zone));
      std::set<std::string> seen;
      for (const auto& r : got.body.value("records", json::array())) {
        const std::string owner = r.value("owner", "");
        if (owner.rfind(ours, 0) != 0 || !seen.insert(owner).second) continue;
        const std::string rest = owner.substr(ours.size());
        const size_t slash = rest.find('/');
        if (slash == std::string::npos) continue;
        out.push_back(ManagedRef{
            "globalservices", rest.substr(0, slash), rest.substr(slash + 1), {{"zone", zone}}});
      }
    }
    return out;
  }

 private:
  std::string Tag(const std::string& ns, const std::string& name) const {
    return owner_ + ":globalservices/" + ns + "/" + name;
  }

  Observed ApplyService(const network::GlobalService& gs, const ObjectLookup& lookup) {
    const auto& md = gs.metadata();
    const auto& spec = gs.spec();
    const std::string tag = Tag(md.namespace_(), md.name());
    const std::string key = md.namespace_() + "/" + md.name();
    SyncState& state = synced_[key];
    Observed o;
    o.depends_on.push_back(RegistryKey("dnszones", md.namespace_(), spec.zone()));
    for (const auto& m : spec.members()) {
      if (m.region_service().empty()) continue;
      o.depends_on.push_back(RegistryKey("regionservices", md.namespace_(), m.region_service()));
      o.depends_on.push_back(RegistryKey("loadbalancers", md.namespace_(), m.region_service()));
    }
    auto prev = gs.status().details().find("zone");
    const std::string prev_zone = prev == gs.status().details().end() ? "" : prev->second;

    auto zone_obj = lookup("dnszones", md.namespace_(), spec.zone());
    const auto* dz = static_cast<const network::DnsZone*>(zone_obj.get());
    if (!dz || dz->status().phase() != Phase::RUNNING) {
      // Records left in a zone that is gone are removed with it.
      if (!dz && !prev_zone.empty()) {
        if (auto st = RemoveRecords(prev_zone, tag); !st.ok())
          return ObservedFromError(st, Phase::PENDING, o);
        state.synced.clear();
      } else if (!prev_zone.empty()) {
        o.details["zone"] = prev_zone;
      }
      o.phase = Phase::PENDING;
      o.message = "waiting for DnsZone '" + spec.zone() + "' in namespace '" + md.namespace_() +
                  "'" +
                  (dz ? " (" + Phase::Phase_Name(dz->status().phase()) + ")"
                      : " (spec.zone names a DnsZone object, not a DNS name)");
      return o;
    }
    const std::string zone = CanonicalZoneName(dz->spec().name());
    o.details["zone"] = zone;
    auto fqdn = DnsRecordFqdn(spec.name(), zone);
    if (!fqdn.ok()) {
      o.phase = Phase::ERROR;
      o.message = std::string(fqdn.status().message());
      return o;
    }
    o.details["fqdn"] = *fqdn;
    if (!prev_zone.empty() && prev_zone != zone) {
      if (auto st = RemoveRecords(prev_zone, tag); !st.ok())
        return ObservedFromError(st, Phase::UPDATING, o);
    }
    const Settings set = SettingsOf(spec);
    std::vector<std::string> waiting;
    std::vector<Target> targets = Resolve(gs, set, lookup, &waiting);
    Votes votes_now = Register(key, targets, set, gs.status());
    // The checker thread counts; this looks at its votes a few times per interval.
    o.requeue_after = std::chrono::milliseconds(std::max(100, set.interval_ms / 4));

    // Judge each member from its checkers' votes.
    std::vector<const Target*> up;
    std::string down_list;
    for (const auto& t : targets) {
      const auto& votes = votes_now[t.key()];
      int downs = 0, ups = 0;
      std::string seen;
      for (size_t c = 0; c < checkers_.size(); ++c) {
        const Vote& v = votes[c];
        if (v.answered) (v.down ? downs : ups)++;
        seen += (seen.empty() ? "" : "; ") + checkers_[c].name + ": " +
                (v.answered ? (v.down ? "down" : "up") + std::string(" (") + v.last + ")"
                            : std::string("no answer"));
      }
      const bool is_down = (downs >= quorum_ && downs > ups) || !t.no_backend.empty();
      if (is_down) {
        down_list += (down_list.empty() ? "" : ", ") + t.label + " " + t.address;
      } else {
        up.push_back(&t);
      }
      o.details["member." + t.label] =
          t.address + ":" + std::to_string(t.port) +
          (t.region.empty() ? "" : " region " + t.region) + (is_down ? " down" : " up") +
          (t.no_backend.empty() ? "" : " (" + t.no_backend + ")") + " [" + seen + "]";
    }
    for (const auto& w : waiting) {
      auto colon = w.find(": ");
      o.details["member." + w.substr(0, colon)] = w.substr(colon + 2);
    }
    if (targets.empty()) {
      if (auto st = SyncRecords(zone, tag, {}, &state); !st.ok())
        return ObservedFromError(st, Phase::CREATING, o);
      o.phase = Phase::PENDING;
      o.message = "no member has a VIP yet";
      return o;
    }
    const bool all_down = up.empty();
    std::set<Record> want;
    for (const auto& t : targets) {
      if (!all_down && std::find(up.begin(), up.end(), &t) == up.end()) continue;
      want.insert({*fqdn, TypeOf(t.address), set.ttl, t.address});
      o.addresses.push_back(t.address);
    }
    if (auto st = SyncRecords(zone, tag, want, &state); !st.ok()) {
      Observed e = ObservedFromError(st, Phase::CREATING, o);
      if (st.code() == StatusCode::kFailedPrecondition) e.phase = Phase::PENDING;
      return e;
    }
    std::string served;
    for (const auto& a : o.addresses) served += (served.empty() ? "" : ", ") + a;
    o.phase = Phase::RUNNING;
    o.message = *fqdn + " " + served + " (" + std::to_string(up.size()) + " of " +
                std::to_string(targets.size()) + " members up" +
                (all_down ? "; all are down, so all are served" : "") +
                (down_list.empty() || all_down ? "" : "; down: " + down_list) +
                (waiting.empty() ? "" : "; " + std::to_string(waiting.size()) + " without a VIP") +
                ")";
    return o;
  }

  // The members with a VIP; a line "label: why" in `waiting` for each without one.
  std::vector<Target> Resolve(const network::GlobalService& gs, const Settings& set,
                              const ObjectLookup& lookup, std::vector<std::string>* waiting) {
    std::vector<Target> out;
    const std::string& ns = gs.metadata().namespace_();
    for (const auto& m : gs.spec().members()) {
      if (!m.address().empty()) {
        out.push_back(Target{m.address(), m.address(), set.port, m.region()});
        continue;
      }
      const std::string& rs_name = m.region_service();
      auto rs = lookup("regionservices", ns, rs_name);
      auto lb_obj = lookup("loadbalancers", ns, rs_name);
      const auto* lb = static_cast<const network::LoadBalancer*>(lb_obj.get());
      std::string why;
      if (!rs) {
        why = "no RegionService '" + rs_name + "' in this namespace";
      } else if (!lb) {
        why = "RegionService '" + rs_name + "' has no spec.loadBalancer, so no VIP";
      } else if (lb->status().phase() != Phase::RUNNING || lb->status().addresses().empty()) {
        why = "its LoadBalancer is " + Phase::Phase_Name(lb->status().phase()) + ", no VIP yet";
      } else if (set.port == 0 && lb->spec().listeners().empty()) {
        why = "its LoadBalancer has no listener to check";
      }
      if (!why.empty()) {
        waiting->push_back(rs_name + ": " + why);
        continue;
      }
      const std::string region =
          !m.region().empty() ? m.region()
                              : static_cast<const compute::RegionService&>(*rs).metadata().region();
      out.push_back(Target{rs_name, lb->status().addresses(0),
                           set.port > 0 ? set.port : lb->spec().listeners(0).port(), region,
                           HasMemberUp(*lb) ? "" : "no member of its LoadBalancer is UP"});
    }
    return out;
  }

  // Hands the members to the checker thread; their votes so far (new ones start up, or down
  // when the last status left them out: a new leader does not put a failed region back while
  // its checkers count to `rise`).
  Votes Register(const std::string& key, const std::vector<Target>& targets, const Settings& set,
                 const resource::ResourceStatus& last) {
    std::lock_guard lock(mu_);
    Checked& c = checked_[key];
    Votes next;
    for (const auto& t : targets) {
      auto it = c.votes.find(t.key());
      if (it != c.votes.end()) {
        next[t.key()] = it->second;
        continue;
      }
      const auto& served = last.addresses();
      const bool was_out = !served.empty() &&
                           std::find(served.begin(), served.end(), t.address) == served.end() &&
                           last.details().count("member." + t.label);
      std::vector<Vote> fresh(checkers_.size());
      for (auto& v : fresh) v.down = was_out;
      next[t.key()] = std::move(fresh);
    }
    c.votes = next;  // VIPs no longer listed are forgotten
    c.targets = targets;
    c.set = set;
    if (c.next_check == Clock::time_point{}) {
      c.next_check = Clock::now();
      cv_.notify_all();
    }
    return next;
  }

  // The checker thread: one round per GlobalService every intervalMs, every checker at once.
  void CheckLoop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      auto due = checked_.end();
      for (auto it = checked_.begin(); it != checked_.end(); ++it) {
        if (due == checked_.end() || it->second.next_check < due->second.next_check) due = it;
      }
      if (due == checked_.end()) {
        cv_.wait(lock);
        continue;
      }
      if (const auto when = due->second.next_check; when > Clock::now()) {
        cv_.wait_until(lock, when);  // a copy: the entry may go while the lock is released
        continue;
      }
      const std::string key = due->first;
      const std::vector<Target> targets = due->second.targets;
      const Settings set = due->second.set;
      due->second.next_check = Clock::now() + std::chrono::milliseconds(set.interval_ms);
      lock.unlock();
      const auto results = RunRound(targets, set);
      lock.lock();
      auto it = checked_.find(key);
      if (it != checked_.end()) Count(targets, set, results, &it->second.votes);
    }
  }

  std::vector<std::vector<std::string>> RunRound(const std::vector<Target>& targets,
                                                 const Settings& set) {
    std::vector<std::vector<std::string>> out;
    if (targets.empty()) return out;
    std::vector<std::future<std::vector<std::string>>> rounds;
    for (auto& c : checkers_) {
      rounds.push_back(std::async(std::launch::async, [&c, &targets, &set] {
        return c.api ? Probe(*c.api, targets, set.timeout_ms) : CheckHere(targets, set.timeout_ms);
      }));
    }
    for (auto& r : rounds) out.push_back(r.get());
    return out;
  }

  // A round's results into the votes: `fall` failures in a row call a member down, `rise`
  // successes up; a checker that did not answer keeps its counts and votes nothing.
  void Count(const std::vector<Target>& targets, const Settings& set,
             const std::vector<std::vector<std::string>>& results, Votes* votes) {
    for (size_t c = 0; c < results.size() && c < checkers_.size(); ++c) {
      for (size_t i = 0; i < targets.size(); ++i) {
        auto it = votes->find(targets[i].key());
        if (it == votes->end()) continue;  // no longer a member
        Vote& v = it->second[c];
        const std::string& r = i < results[c].size() ? results[c][i] : std::string();
        v.answered = !r.empty();
        if (r.empty()) continue;
        const bool ok = r == "ok";
        v.last = r;
        v.successes = ok ? v.successes + 1 : 0;
        v.failures = ok ? 0 : v.failures + 1;
        if (ok && v.successes >= set.rise) v.down = false;
        if (!ok && v.failures >= set.fall) v.down = true;
      }
    }
  }

  static std::vector<std::string> CheckHere(const std::vector<Target>& targets, int timeout_ms) {
    std::vector<std::future<std::string>> f;
    for (const auto& t : targets)
      f.push_back(std::async(std::launch::async, CheckTcpConnect, t.address, t.port, timeout_ms));
    std::vector<std::string> out;
    for (auto& r : f) out.push_back(r.get());
    return out;
  }

  // A flashdns's results, or empty strings when it did not answer.
  static std::vector<std::string> Probe(DaemonClient& api, const std::vector<Target>& targets,
                                        int timeout_ms) {
    json body = {{"timeout_ms", timeout_ms}, {"targets", json::array()}};
    for (const auto& t : targets)
      body["targets"].push_back({{"address", t.address}, {"port", t.port}});
    DaemonReply r = api.Call("POST", "/v1/probe", body);
    std::vector<std::string> out(targets.size());
    if (!api.AsStatus(r, "probe").ok()) {
      spdlog::warn("gslb checker: {}", api.AsStatus(r, "probe").ToString());
      return out;
    }
    const json results = r.body.value("results", json::array());
    for (size_t i = 0; i < targets.size() && i < results.size(); ++i)
      out[i] = results[i].value("result", "");
    return out;
  }

  // Makes flashdns hold exactly `want` of ours in `zone`. Skips flashdns when nothing changed
  // since the last sync, except every kFullSyncEvery.
  Status SyncRecords(const std::string& zone, const std::string& tag, const std::set<Record>& want,
                     SyncState* state) {
    const auto now = Clock::now();
    if (state->synced_zone == zone && state->synced == want &&
        now - state->synced_at < kFullSyncEvery)
      return absl::OkStatus();
    state->synced_zone.clear();  // unknown until this sync succeeds
    DaemonReply got = api_->Call("GET", "/v1/zones/" + zone);
    if (got.reached && got.status == 404)
      return absl::UnavailableError("zone " + zone + " is not served by flashdns yet");
    PHOTON_RETURN_IF_ERROR(api_->AsStatus(got, "get zone " + zone));
    const std::string zone_owner = got.body.value("owner", "");
    if (zone_owner.rfind(owner_ + ":dnszones/", 0) != 0) {
      return absl::FailedPreconditionError("zone " + zone + " is not held by a DnsZone of " +
                                           owner_);
    }
    std::set<Record> have;
    for (const auto& rec : got.body.value("records", json::array())) {
      if (rec.value("owner", "") != tag) continue;
      Record r{AsciiLower(rec.value("name", "")), rec.value("type", ""), rec.value("ttl", 0u),
               rec.value("data", "")};
      if (want.count(r) && have.insert(r).second) continue;
      const std::string id = rec.value("id", "");
      DaemonReply del = api_->Call("DELETE", "/v1/zones/" + zone + "/records/" + id);
      if (del.reached && del.status == 404) continue;
      PHOTON_RETURN_IF_ERROR(api_->AsStatus(del, "delete record " + id));
    }
    for (const auto& r : want) {
      if (have.count(r)) continue;
      const auto& [name, type, ttl, data] = r;
      json body = {{"name", name}, {"type", type}, {"ttl", ttl}, {"data", data}, {"owner", tag}};
      DaemonReply made = api_->Call("POST", "/v1/zones/" + zone + "/records", body);
      PHOTON_RETURN_IF_ERROR(api_->AsStatus(made, "add record " + name + " " + data));
    }
    state->synced_zone = zone;
    state->synced = want;
    state->synced_at = now;
    return absl::OkStatus();
  }

  // Deletes every record tagged `tag` in `zone`.
  Status RemoveRecords(const std::string& zone, const std::string& tag) {
    DaemonReply got = api_->Call("GET", "/v1/zones/" + zone);
    if (got.reached && got.status == 404) return absl::OkStatus();
    PHOTON_RETURN_IF_ERROR(api_->AsStatus(got, "get zone " + zone));
    for (const auto& r : got.body.value("records", json::array())) {
      if (r.value("owner", "") != tag) continue;
      const std::string id = r.value("id", "");
      DaemonReply del = api_->Call("DELETE", "/v1/zones/" + zone + "/records/" + id);
      if (del.reached && del.status == 404) continue;
      PHOTON_RETURN_IF_ERROR(api_->AsStatus(del, "delete record " + id));
    }
    return absl::OkStatus();
  }

  std::unique_ptr<DaemonClient> api_;
  std::vector<Checker> checkers_;
  const int quorum_;
  const std::string owner_;
  std::map<std::string, SyncState> synced_;  // "<namespace>/<name>" → the last sync

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, Checked> checked_;  // "<namespace>/<name>" → its members and votes
  std::thread thread_;  // CheckLoop; last, so it starts after everything it uses
};

std::vector<std::string> SplitList(const std::string& value) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= value.size()) {
    size_t j = value.find(',', i);
    if (j == std::string::npos) j = value.size();
    std::string item = AsciiTrim(value.substr(i, j - i));
    if (!item.empty()) out.push_back(item);
    i = j + 1;
  }
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<ServiceProvider>> NewGslbProvider(const ProviderConfig& config) {
  std::string endpoint, token_file, owner = "photon", checker_list = "self,flashdns";
  int timeout_ms = 2000, quorum = 2;
  const std::string where = "providers (gslb): ";
  try {
    for (const auto& [key, value] : config.settings) {
      if (key == "endpoint") {
        endpoint = value;
      } else if (key == "token_file") {
        token_file = value;
      } else if (key == "owner") {
        owner = value;
      } else if (key == "checkers") {
        checker_list = value;
      } else if (key == "quorum") {
        quorum = std::stoi(value);
      } else if (key == "timeout_ms") {
        timeout_ms = std::stoi(value);
      } else {
        return absl::InvalidArgumentError(where + "unknown key '" + key + "'");
      }
    }
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(where + "quorum and timeout_ms want numbers");
  }
  PHOTON_RETURN_IF_ERROR(ValidateDaemonConfig(where, endpoint, token_file, timeout_ms));
  if (owner.empty() || owner.find_first_of(":/ ") != std::string::npos)
    return absl::InvalidArgumentError(where + "owner: a non-empty tag without ':', '/' or spaces");
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  std::vector<Checker> checkers;
  std::set<std::string> seen;
  for (const auto& item : SplitList(checker_list)) {
    if (!seen.insert(item).second)
      return absl::InvalidArgumentError(where + "checkers: '" + item + "' is listed twice");
    if (item == "self") {
      checkers.push_back({"photon-server", nullptr});
    } else if (item == "flashdns") {
      checkers.push_back({"flashdns " + endpoint, std::make_unique<DaemonClient>(
                                                      "flashdns", endpoint, token_file, timeout)});
    } else {
      const size_t eq = item.find('=');
      const std::string url = item.substr(0, eq);
      const std::string token = eq == std::string::npos ? "" : item.substr(eq + 1);
      PHOTON_RETURN_IF_ERROR(
          ValidateDaemonConfig(where + "checkers '" + item + "': ", url, token, timeout_ms));
      checkers.push_back(
          {"flashdns " + url, std::make_unique<DaemonClient>("flashdns", url, token, timeout)});
    }
  }
  // Two at least: the point of several vantage points is that one alone removes nothing.
  if (quorum < 2 || quorum > static_cast<int>(checkers.size())) {
    return absl::InvalidArgumentError(where + "quorum: want 2.." + std::to_string(checkers.size()) +
                                      " (checkers that must agree a member is down; at least two "
                                      "so that one checker's failure removes nothing)");
  }
  auto api = std::make_unique<DaemonClient>("flashdns", endpoint, token_file, timeout);
  return std::unique_ptr<ServiceProvider>(
      std::make_unique<GslbProvider>(std::move(api), std::move(checkers), quorum, owner));
}

}  // namespace photon::server
