// Accelerator detection; see accel.h.
#include "agent/providers/vm/accel.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/providers/vm/vm_util.h"
#include "common/file_util.h"

namespace photon::agent::vm {
namespace {

// A 64 KiB "firmware" whose reset vector (its last 16 bytes, run first by the vCPU) does
// out 0xf4, 0x10 (isa-debug-exit: QEMU exits with (0x10 << 1) | 1), then halts forever should
// the write not end QEMU. No BIOS, no disk: milliseconds when the accelerator works.
std::string ProbeFirmware() {
  std::string rom(64 * 1024, '\0');
  const unsigned char code[] = {0xB0, 0x10, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD};
  for (size_t i = 0; i < sizeof(code); ++i) rom[rom.size() - 16 + i] = static_cast<char>(code[i]);
  return rom;
}
constexpr int kProbeExitCode = (0x10 << 1) | 1;

}  // namespace

bool CpuHasHardwareVirtualization() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::string flag;
    while (words >> flag) {
      if (flag == "vmx" || flag == "svm") return true;
    }
    return false;
  }
  return false;
}

Status ProbeAccel(const std::string& qemu_binary, const std::string& accel,
                  const std::string& work_dir, std::chrono::milliseconds timeout) {
  PHOTON_RETURN_IF_ERROR(MakeDirs(work_dir, 0700));
  const std::string rom = work_dir + "/accel-probe-" + accel + ".bin";
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(rom, ProbeFirmware(), 0600));
  auto result = RunCommand(
      {qemu_binary, "-nodefaults", "-no-user-config", "-display", "none", "-machine", "q35",
       "-accel", accel, "-m", "16", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-bios",
       rom, "-serial", "none", "-monitor", "none"},
      timeout);
  std::error_code ec;
  std::filesystem::remove(rom, ec);
  if (!result.ok()) {
    return absl::UnavailableError("probe guest did not finish under " + accel + ": " +
                                  std::string(result.status().message()));
  }
  if (result->exit_code != kProbeExitCode) {
    return absl::UnavailableError("probe guest under " + accel + " exited with " +
                                  std::to_string(result->exit_code) + ": " + result->output);
  }
  return absl::OkStatus();
}

AccelInfo DetectAccel(const std::string& qemu_binary, const std::string& forced,
                      const std::string& work_dir) {
  if (forced == "tcg") return {"tcg", "forced by configuration"};
  if (forced == "kvm") return {"kvm", "forced by configuration"};
  if (!CpuHasHardwareVirtualization()) {
    return {"tcg", "no vmx/svm in /proc/cpuinfo"};
  }
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return {"tcg", "/dev/kvm cannot be opened"};
  close(fd);
  Status probe = ProbeAccel(qemu_binary, "kvm", work_dir, std::chrono::seconds(10));
  if (!probe.ok()) return {"tcg", "KVM probe failed: " + std::string(probe.message())};
  return {"kvm", "hardware virtualization and a probe guest ran under KVM"};
}

}  // namespace photon::agent::vm
