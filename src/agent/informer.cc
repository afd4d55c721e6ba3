#include "agent/informer.h"

#include <cstdlib>
#include <set>
#include <thread>

#include "common/http_server.h"
#include "spdlog/spdlog.h"

namespace photon::agent {
using json = nlohmann::json;

Informer::Informer(ApiClient* api, std::string path,
                   std::function<void(const std::string&)> on_change)
    : api_(api), path_(std::move(path)), on_change_(std::move(on_change)) {}

const char* Informer::Sep() const { return path_.find('?') == std::string::npos ? "?" : "&"; }

std::string Informer::KeyOf(const json& object) {
  if (!object.is_object() || !object.contains("metadata")) return "";
  const auto& md = object["metadata"];
  return md.value("namespace", "") + "/" + md.value("name", "");
}

Status Informer::Sync() {
  std::map<std::string, json> fresh;
  std::string rv, cont;
  do {
    std::string target = path_ + Sep() + "limit=500";
    if (!cont.empty()) target += "&continue=" + PercentEncode(cont);
    PHOTON_ASSIGN_OR_RETURN(json page, api_->Get(target));
    if (rv.empty()) rv = page.value("resourceVersion", "");
    if (page.contains("items") && page["items"].is_array()) {
      for (auto& item : page["items"]) fresh[KeyOf(item)] = item;
    }
    cont = page.contains("continue") && page["continue"].is_string()
               ? page["continue"].get<std::string>()
               : "";
  } while (!cont.empty());
  std::set<std::string> changed;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [k, v] : cache_) {
      if (!fresh.count(k)) changed.insert(k);
    }
    for (const auto& [k, v] : fresh) changed.insert(k);
    cache_ = std::move(fresh);
    resource_version_ = rv;
  }
  for (const auto& k : changed) on_change_(k);
  return absl::OkStatus();
}

void Informer::Run(const std::atomic<bool>* stop) {
  bool need_list = false;
  while (!stop->load()) {
    if (need_list) {
      Status s = Sync();
      if (!s.ok()) {
        spdlog::warn("list {}: {}", path_, s.ToString());
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      need_list = false;
    }
    std::string rv;
    {
      std::lock_guard<std::mutex> l(mu_);
      rv = resource_version_;
    }
    Status s = api_->Watch(path_ + Sep() + "watch=true&resourceVersion=" + rv, [&](const json& ev) {
      if (stop->load()) return false;
      if (!ev.contains("object")) return true;
      const json& obj = ev["object"];
      std::string type = ev.value("type", "");
      if (type == "BOOKMARK") {
        // Nothing changed in our selection up to this version: resume from here, so a quiet
        // selection never falls behind the server's history.
        std::lock_guard<std::mutex> l(mu_);
        resource_version_ = obj["metadata"].value("resourceVersion", resource_version_);
        return true;
      }
      std::string key = KeyOf(obj);
      {
        std::lock_guard<std::mutex> l(mu_);
        if (type == "DELETED") {
          cache_.erase(key);
        } else {
          cache_[key] = obj;
        }
        if (obj.contains("metadata")) {
          std::string orv = obj["metadata"].value("resourceVersion", "");
          if (std::strtoull(orv.c_str(), nullptr, 10) >=
              std::strtoull(resource_version_.c_str(), nullptr, 10)) {
            resource_version_ = orv;
          }
        }
      }
      on_change_(key);
      return true;
    });
    if (stop->load()) return;
    if (s.code() == absl::StatusCode::kOutOfRange) {
      need_list = true;
      continue;
    }
    if (!s.ok()) {
      spdlog::warn("watch {}: {}", path_, s.ToString());
      need_list = true;  // the server may have restarted with a different history
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

std::optional<json> Informer::Get(const std::string& key) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> Informer::Keys() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  for (const auto& [k, v] : cache_) out.push_back(k);
  return out;
}

}  // namespace photon::agent
