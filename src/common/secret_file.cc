#include "common/secret_file.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cctype>

#include "common/file_util.h"
#include "common/util.h"

namespace photon {

StatusOr<std::string> LoadOrCreateSecret(const std::string& path, bool* created) {
  *created = false;
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0) {
      spdlog::warn("{} was readable by group/others; setting mode 0600", path);
      if (chmod(path.c_str(), 0600) != 0) {
        return absl::PermissionDeniedError("cannot chmod 0600 " + path);
      }
    }
    PHOTON_ASSIGN_OR_RETURN(std::string secret, ReadFile(path));
    while (!secret.empty() && isspace(static_cast<unsigned char>(secret.back()))) {
      secret.pop_back();
    }
    if (secret.empty()) return absl::FailedPreconditionError(path + " is empty");
    return secret;
  }
  std::string secret = RandomHex(32);
  PHOTON_RETURN_IF_ERROR(WriteFileAtomic(path, secret + "\n", 0600));
  *created = true;
  return secret;
}

}  // namespace photon
