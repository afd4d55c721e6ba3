#include "agent/host/image_root.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

namespace photon::agent {

namespace {

StatusOr<std::string> RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    return absl::FailedPreconditionError(path + ": " + strerror(errno));
  }
  return std::string(buf);
}

// Overlay mounts take lowerdir in a comma-separated option string and ':' separates layers,
// so such a character would let a path add options or layers.
bool SafeChars(const std::string& path) {
  for (unsigned char c : path) {
    if (c < 0x20 || c == 0x7f || c == ',' || c == ':') return false;
  }
  return true;
}

}  // namespace

std::string ImagesRootFrom(const std::map<std::string, std::string>& config) {
  auto it = config.find("images_root");
  return it == config.end() || it->second.empty() ? kDefaultImagesRoot : it->second;
}

StatusOr<std::string> ResolveImageSource(const std::string& images_root, const std::string& source,
                                         const std::string& image_name) {
  const std::string what = "Image '" + image_name + "': spec.sourcePath '" + source + "'";
  if (source.empty()) return absl::InvalidArgumentError(what + " is empty");
  if (!SafeChars(source)) {
    return absl::InvalidArgumentError(what + " contains ',', ':' or a control character");
  }
  auto root = RealPath(images_root);
  if (!root.ok()) {
    return absl::FailedPreconditionError("the node's images root " + images_root +
                                         " is not usable: " + std::string(root.status().message()));
  }
  std::string joined = source[0] == '/' ? source : *root + "/" + source;
  auto real = RealPath(joined);
  if (!real.ok()) {
    return absl::FailedPreconditionError(what + " does not exist on this node (" +
                                         std::string(real.status().message()) + ")");
  }
  if (*real != *root && real->rfind(*root + "/", 0) != 0) {
    return absl::PermissionDeniedError(what + " resolves to " + *real +
                                       ", outside the node's images root " + *root +
                                       "; images come only from there");
  }
  if (!SafeChars(*real)) {
    return absl::InvalidArgumentError(what +
                                      " resolves to a path with ',', ':' or a control "
                                      "character");
  }
  return *real;
}

}  // namespace photon::agent
