// Cheap checks of DnsZone and DnsRecord specs, applied by the API at create and update so a
// bad record is a 400 naming the field rather than an ERROR status later. The backend
// (flashdns) still parses every value and its refusal ends up in the status.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "common/status.h"

namespace photon::server {

// A DnsZone or DnsRecord; OK for other messages.
Status ValidateDnsSpec(const google::protobuf::Message& obj);
// Presentation-form DNS name: labels of letters, digits, '-', '_' (1-63 each, 253 in all), a
// lone '*' label, an optional trailing dot.
Status ValidateDnsName(const std::string& field, const std::string& name);

}  // namespace photon::server
