// Where the images a node runs come from: one directory tree its owner configures (driver
// option `images_root`, default /var/lib/photon/images). An Image's spec.sourcePath (written
// by any editor of a namespace) may name only a file or directory inside that tree, after
// every symlink is resolved — never /root, another agent's data or a path that smuggles mount
// options. Only the node's owner can put files there, so what an editor can boot or overlay is
// what the owner published.
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <string>

#include "common/status.h"

namespace photon::agent {

inline constexpr char kDefaultImagesRoot[] = "/var/lib/photon/images";

// The `images_root` option of a driver's config, else the default.
std::string ImagesRootFrom(const std::map<std::string, std::string>& config);

// The canonical path of `source` (absolute, or relative to the root) when it lies inside
// `images_root`: PERMISSION_DENIED when it resolves outside, FAILED_PRECONDITION when it does
// not exist, INVALID_ARGUMENT for characters no image path needs (',', ':', control bytes).
StatusOr<std::string> ResolveImageSource(const std::string& images_root, const std::string& source,
                                         const std::string& image_name);

}  // namespace photon::agent
