// The API's checks of a GlobalService spec: a 400 naming the field rather than an ERROR status
// later (docs/flashdns.md "GlobalService").
#pragma once

#include <google/protobuf/message.h>

#include "common/status.h"

namespace photon::server {

// A GlobalService; OK for other messages.
Status ValidateGlobalService(const google::protobuf::Message& obj);

}  // namespace photon::server
