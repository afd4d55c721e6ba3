// The kinds the API serves: one table mapping the plural lower-case name used in URLs and on
// the command line to the protobuf message that is its schema.
// Immutable after start-up; thread-safe to read.
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <vector>

namespace photon::server {

struct KindInfo {
  std::string kind;    // "ComputeInstance"
  std::string plural;  // "computeinstances"
  const google::protobuf::Message* prototype;
  bool user_creatable;   // false for kinds only the system writes (operations, audit events)
  bool status_by_agent;  // agents may write status of this kind
};

// nullptr when unknown. Accepts the plural, the singular lower case or the Kind name.
const KindInfo* FindKind(const std::string& name);
// By protobuf full name ("photon.compute.ComputeInstance").
const KindInfo* FindKindByTypeName(const std::string& full_name);
const std::vector<KindInfo>& AllKinds();
// "computeinstances, flavors, ..." for error messages.
std::string KnownKindNames();

}  // namespace photon::server
