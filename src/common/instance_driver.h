// The driver a ComputeInstance asks for, read off its spec's backend. Shared by the agent (which
// picks the provider) and the server (which tells a stream session what it attaches to).
// Header-only: include it only from targets that link photon_proto.
#pragma once

#include <string>

#include "photon/compute.pb.h"

namespace photon {

// "process", "container" or "vm"; "" when the spec names no backend.
inline std::string DriverOf(const compute::ComputeInstance& instance) {
  switch (instance.spec().backend_case()) {
    case compute::ComputeInstanceSpec::kProcess:
      return "process";
    case compute::ComputeInstanceSpec::kContainer:
      return "container";
    case compute::ComputeInstanceSpec::kVm:
      return "vm";
    default:
      return "";
  }
}

}  // namespace photon
