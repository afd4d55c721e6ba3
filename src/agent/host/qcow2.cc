#include "agent/host/qcow2.h"

#include "agent/host/run.h"

namespace photon::agent {

Status RefuseQcow2BackingFile(const std::string& name, const std::string& path) {
  PHOTON_ASSIGN_OR_RETURN(RunResult r,
                          RunCommand({"qemu-img", "info", "--output=json", "-f", "qcow2", path},
                                     std::chrono::seconds(60)));
  if (r.exit_code != 0) {
    return absl::FailedPreconditionError("image " + name +
                                         ": not a valid qcow2 image: " + r.output);
  }
  if (r.output.find("\"backing-filename\"") != std::string::npos) {
    return absl::PermissionDeniedError("image " + name +
                                       ": a qcow2 image with a backing file is refused (the "
                                       "backing file would reach the guest unverified)");
  }
  return absl::OkStatus();
}

}  // namespace photon::agent
