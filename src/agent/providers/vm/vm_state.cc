// VmState persistence; see vm_state.h.
#include "agent/providers/vm/vm_state.h"

#include <memory>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/util.h"

namespace photon::agent::vm {
namespace {

nlohmann::json ToJson(const VmState& s) {
  nlohmann::json volumes = nlohmann::json::array();
  for (const auto& v : s.volumes) {
    volumes.push_back({{"name", v.name},
                       {"disk_id", v.disk_id},
                       {"path", v.path},
                       {"format", v.format},
                       {"port", v.port}});
  }
  return {{"id", s.id},
          {"namespace", s.ns},
          {"name", s.name},
          {"dir", s.dir},
          {"qmp_socket", s.qmp_socket},
          {"pidfile", s.pidfile},
          {"console_log", s.console_log},
          {"serial_socket", s.serial_socket},
          {"pid", s.pid},
          {"stopped", s.stopped},
          {"launching", s.launching},
          {"paused", s.paused},
          {"volumes_initialized", s.volumes_initialized},
          {"boot_offset", s.boot_offset},
          {"boot_started_ms", s.boot_started_ms},
          {"ready_timeout_s", s.ready_timeout_s},
          {"hotplug_ports", s.hotplug_ports},
          {"accel", s.accel},
          {"machine", s.machine},
          {"tap", s.tap},
          {"volumes", volumes}};
}

}  // namespace

std::string DiskIdFor(const std::string& volume) { return "v" + Sha256Hex(volume).substr(0, 8); }

Status VmState::Save() const { return WriteFileAtomic(StatePath(), ToJson(*this).dump(), 0600); }

std::string VmState::HandleData() const {
  return nlohmann::json{{"dir", dir}, {"qmp_socket", qmp_socket}, {"pid", pid}}.dump();
}

StatusOr<std::unique_ptr<VmState>> VmState::Load(const std::string& dir) {
  PHOTON_ASSIGN_OR_RETURN(std::string text, ReadFile(dir + "/state.json"));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError("corrupt " + dir + "/state.json");
  auto s = std::make_unique<VmState>();
  s->id = j.value("id", "");
  s->ns = j.value("namespace", "");
  s->name = j.value("name", "");
  s->dir = dir;
  s->qmp_socket = j.value("qmp_socket", "");
  s->pidfile = j.value("pidfile", "");
  s->console_log = j.value("console_log", "");
  s->serial_socket = j.value("serial_socket", "");
  s->pid = j.value("pid", 0);
  s->stopped = j.value("stopped", false);
  s->launching = j.value("launching", false);
  s->paused = j.value("paused", false);
  s->volumes_initialized = j.value("volumes_initialized", false);
  s->boot_offset = j.value("boot_offset", int64_t{0});
  s->scan_offset = s->boot_offset;
  s->boot_started_ms = j.value("boot_started_ms", int64_t{0});
  s->ready_timeout_s = j.value("ready_timeout_s", int64_t{0});
  s->hotplug_ports = j.value("hotplug_ports", 0);
  s->accel = j.value("accel", "");
  s->machine = j.value("machine", "");
  s->tap = j.value("tap", "");
  if (j.contains("volumes") && j["volumes"].is_array()) {
    for (const auto& v : j["volumes"]) {
      if (!v.is_object()) continue;
      s->volumes.push_back(AttachedVolume{v.value("name", ""), v.value("disk_id", ""),
                                          v.value("path", ""), v.value("format", ""),
                                          v.value("port", 0)});
    }
  }
  if (s->id.empty()) return absl::DataLossError("no id in " + dir + "/state.json");
  return s;
}

Status VmState::SaveSpec(const compute::ComputeInstance& instance) const {
  return WriteFileAtomic(SpecPath(), instance.SerializeAsString(), 0600);
}

StatusOr<compute::ComputeInstance> VmState::LoadSpec() const {
  PHOTON_ASSIGN_OR_RETURN(std::string data, ReadFile(SpecPath()));
  compute::ComputeInstance instance;
  if (!instance.ParseFromString(data)) return absl::DataLossError("corrupt " + SpecPath());
  return instance;
}

}  // namespace photon::agent::vm
