// One simulated node of a hollow fleet: a state machine on its shard's event loop.
//   join (or the stored credential) -> register -> heartbeat every interval
//                                   -> list own instances -> watch them (relist on 410/errors)
// Every instance assigned to it is reported CREATING, then RUNNING (observedGeneration = its
// generation); one with a deletionTimestamp is finished with DELETE, as photon-agent does
// after destroying the workload. Nothing runs on the host.
// Thread-safety: none; everything runs on the shard's loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/hollow/async_http.h"

namespace photon::hollow {

class Fleet;
class Shard;

enum class Series { kHeartbeat = 0, kDelivery = 1, kAssignedToRunning = 2 };
constexpr int kSeriesCount = 3;

boost::asio::io_context* ShardIo(Shard* s);
AsyncHttp* ShardHttp(Shard* s);
void ShardSample(Shard* s, Series series, double ms);

class HollowNode {
 public:
  HollowNode(Fleet* fleet, Shard* shard, std::string name);
  void Start();

 private:
  struct Instance {
    nlohmann::json object;
    bool busy = false;   // a write or delete of it is in flight
    bool dirty = false;  // changed meanwhile: look again when the write ends
    bool running = false;
    bool deleted = false;    // our DELETE went through; the watch's DELETED is on its way
    std::string last_stamp;  // the last delivery stamp sampled
    std::chrono::steady_clock::time_point seen;  // first seen assigned here
  };

  void Join();
  void Register();
  void Beat();
  void ScheduleBeat(std::chrono::milliseconds delay);
  void List(std::string cont, std::shared_ptr<std::map<std::string, nlohmann::json>> fresh);
  void Watch();
  bool OnLine(std::string_view line);
  void Upsert(const nlohmann::json& object);
  void Forget(const std::string& key);
  void Reconcile(const std::string& key);
  void WriteStatus(const std::string& key, const std::string& phase);
  void Finish(const std::string& key);
  void After(std::chrono::milliseconds delay, std::function<void()> fn);
  void Call(const std::string& method, const std::string& target, const nlohmann::json& body,
            AsyncHttp::Callback cb);
  std::string NodePath() const;
  std::string Selector() const;

  Fleet* fleet_;
  Shard* shard_;
  std::string name_;
  std::string token_;
  nlohmann::json node_;  // the Node as last written
  boost::asio::steady_timer beat_timer_;
  bool ready_ = false;
  bool beating_ = false;
  std::string resource_version_;
  std::shared_ptr<WatchHandle> watch_;
  std::map<std::string, Instance> instances_;  // by "namespace/name"
};

}  // namespace photon::hollow
