// Accelerator detection: KVM only when the CPU advertises hardware virtualization (vmx/svm in
// /proc/cpuinfo), /dev/kvm opens, and a tiny guest really runs under KVM within a timeout. The
// existence of /dev/kvm alone proves nothing: a paravirtual nested KVM (e.g. PVM) exposes it
// but hangs stock guest kernels. Otherwise TCG (software emulation). An operator can force
// either.
// Thread-safety: pure functions (the probe uses its own temp files).
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"

namespace photon::agent::vm {

struct AccelInfo {
  std::string accel;   // "kvm" or "tcg"
  std::string reason;  // why, for logs and the Node attribute "vm.accel.reason"
};

bool CpuHasHardwareVirtualization();

// Runs a 64 KiB firmware under `accel` whose first instructions write to QEMU's isa-debug-exit
// port; OK when QEMU exits with the code the guest wrote (so the guest's instructions really
// executed).
Status ProbeAccel(const std::string& qemu_binary, const std::string& accel,
                  const std::string& work_dir, std::chrono::milliseconds timeout);

// forced: "" (detect), "kvm" or "tcg".
AccelInfo DetectAccel(const std::string& qemu_binary, const std::string& forced,
                      const std::string& work_dir);

}  // namespace photon::agent::vm
