#include "server/field_selector.h"

#include "photon/resource.pb.h"
#include "server/object_util.h"

namespace photon::server {

namespace {

struct FieldName {
  const char* name;
  int field;  // FieldSelector::Field, as int so the table stays outside the class
};
constexpr FieldName kFields[] = {
    {"metadata.name", 0}, {"metadata.namespace", 1}, {"metadata.agentId", 2}, {"status.phase", 3}};

std::string KnownFields() {
  std::string out;
  for (const auto& f : kFields) out += std::string(out.empty() ? "" : ", ") + f.name;
  return out;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

ObjectFields FieldsOf(const google::protobuf::Message& obj) {
  ObjectFields out;
  const auto& md = GetMetadata(obj);
  out.name = md.name();
  out.namespace_ = md.namespace_();
  out.agent_id = md.agent_id();
  if (const auto* st = GetStatus(obj))
    out.phase = resource::ResourceStatus::Phase_Name(st->phase());
  return out;
}

StatusOr<FieldSelector> FieldSelector::Parse(const std::string& text) {
  FieldSelector sel;
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError("fieldSelector '" + text + "': " + why);
  };
  if (Trim(text).empty()) return sel;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string_view term(text.data() + start, comma - start);
    start = comma + 1;
    size_t op = term.find_first_of("!=");
    if (op == std::string_view::npos) {
      return bad("term '" + Trim(term) + "' has no operator (want field=value or field!=value)");
    }
    Term t;
    size_t value_at;
    if (term.compare(op, 2, "!=") == 0) {
      t.equal = false;
      value_at = op + 2;
    } else if (term[op] == '!') {
      return bad("term '" + Trim(term) + "': '!' must be followed by '='");
    } else {
      t.equal = true;
      value_at = term.compare(op, 2, "==") == 0 ? op + 2 : op + 1;
    }
    std::string field = Trim(term.substr(0, op));
    t.value = Trim(term.substr(value_at));
    if (field.empty()) return bad("term '" + Trim(term) + "' names no field");
    if (t.value.find_first_of("!=") != std::string::npos) {
      return bad("term '" + Trim(term) + "': the value may not contain '=' or '!'");
    }
    int found = -1;
    for (const auto& f : kFields) {
      if (field == f.name) found = f.field;
    }
    if (found < 0) {
      return bad("unknown field '" + field + "' (selectable: " + KnownFields() + ")");
    }
    t.field = static_cast<Field>(found);
    resource::ResourceStatus::Phase phase;
    if (t.field == Field::kPhase && !t.value.empty() &&
        !resource::ResourceStatus::Phase_Parse(t.value, &phase)) {
      return bad("status.phase: '" + t.value +
                 "' is not a phase (PENDING, CREATING, RUNNING, UPDATING, DELETING, DELETED, "
                 "ERROR, SUSPENDED)");
    }
    sel.terms_.push_back(std::move(t));
    if (comma == text.size()) break;
  }
  return sel;
}

const std::string& FieldSelector::ValueOf(const ObjectFields& fields, Field field) {
  switch (field) {
    case Field::kName:
      return fields.name;
    case Field::kNamespace:
      return fields.namespace_;
    case Field::kAgentId:
      return fields.agent_id;
    case Field::kPhase:
      break;
  }
  return fields.phase;
}

bool FieldSelector::Matches(const ObjectFields& fields) const {
  for (const auto& t : terms_) {
    if ((ValueOf(fields, t.field) == t.value) != t.equal) return false;
  }
  return true;
}

const std::string* FieldSelector::RequiredValue(std::string_view field) const {
  for (const auto& t : terms_) {
    if (t.equal && field == kFields[static_cast<int>(t.field)].name) return &t.value;
  }
  return nullptr;
}

}  // namespace photon::server
