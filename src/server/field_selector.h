// Field selectors (?fieldSelector=, like Kubernetes'): a few fields every object has, compared
// for equality. "metadata.agentId=node-1,status.phase!=RUNNING" — terms joined by commas must
// all hold; operators are =, == and !=. Fields: metadata.name, metadata.namespace,
// metadata.agentId (the node an object is placed on; "" = unplaced), status.phase (a phase
// name; kinds without a ResourceStatus, such as operations, have none and match only "").
// An unknown field, operator or phase is refused naming it: a selector is never ignored.
//
// Why a fixed set: these are what the server can read off any object once (ObjectFields is
// computed once per object version and shared by every watcher), so a selection costs string
// compares per watcher, not a decode.
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace photon::server {

struct ObjectFields {
  std::string name;
  std::string namespace_;
  std::string agent_id;
  std::string phase;  // "" for kinds without a ResourceStatus
};

// The selectable fields of a decoded object.
ObjectFields FieldsOf(const google::protobuf::Message& obj);

class FieldSelector {
 public:
  static StatusOr<FieldSelector> Parse(const std::string& text);
  bool Matches(const ObjectFields& fields) const;
  bool empty() const { return terms_.empty(); }
  // The value `field` must equal under this selector (a "field=value" term), or nullptr.
  const std::string* RequiredValue(std::string_view field) const;

 private:
  enum class Field { kName, kNamespace, kAgentId, kPhase };
  struct Term {
    Field field;
    bool equal;  // = / == (true) or != (false)
    std::string value;
  };
  static const std::string& ValueOf(const ObjectFields& fields, Field field);
  std::vector<Term> terms_;
};

}  // namespace photon::server
