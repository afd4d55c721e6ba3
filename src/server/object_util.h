// Generic access to any resource message (every kind has `metadata`, `spec`, `status` fields)
// plus the validation rules the API applies to all kinds. Stateless; thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "photon/resource.pb.h"
#include "server/kinds.h"

namespace photon::server {

resource::ResourceMetadata* MutableMetadata(google::protobuf::Message* obj);
const resource::ResourceMetadata& GetMetadata(const google::protobuf::Message& obj);
// nullptr for kinds whose status is not a ResourceStatus (operations).
resource::ResourceStatus* MutableStatus(google::protobuf::Message* obj);
const resource::ResourceStatus* GetStatus(const google::protobuf::Message& obj);
// Serialized spec, to detect spec changes (generation bumps).
std::string SpecBytes(const google::protobuf::Message& obj);
void CopySpec(const google::protobuf::Message& from, google::protobuf::Message* to);
void CopyStatus(const google::protobuf::Message& from, google::protobuf::Message* to);

// RFC 1123 DNS label: 1-63 of [a-z0-9-], starting and ending alphanumeric.
Status ValidateName(const std::string& field, const std::string& name);

// Parses JSON for `kind` into a new message. Unknown fields are refused with their name; a
// top-level "kind" member must match. Errors are INVALID_ARGUMENT.
StatusOr<std::unique_ptr<google::protobuf::Message>> ParseJsonObject(const KindInfo& kind,
                                                                     const std::string& json);
// JSON with a leading "kind" member, as clients read it.
std::string ToJson(const KindInfo& kind, const google::protobuf::Message& obj);
void AppendToJson(const KindInfo& kind, const google::protobuf::Message& obj, std::string* out);
std::string MessageToJson(const google::protobuf::Message& msg);

// An instance whose workload serves Prometheus metrics of its own asks to be discovered with
// these annotations (the convention Prometheus's Kubernetes examples use): scrape "true", the
// port, and optionally the path (default /metrics). Checked with the spec.
inline constexpr char kScrapeAnnotation[] = "prometheus.io/scrape";
inline constexpr char kScrapePortAnnotation[] = "prometheus.io/port";
inline constexpr char kScrapePathAnnotation[] = "prometheus.io/path";

// Kind-specific checks of a spec (required fields, ranges), naming the offending field.
Status ValidateSpec(const KindInfo& kind, const google::protobuf::Message& obj);

// Kubernetes-style label selector: "a=b,c!=d,e,!f,g in (x,y),h notin (z)".
class LabelSelector {
 public:
  static StatusOr<LabelSelector> Parse(const std::string& text);
  bool Matches(const google::protobuf::Map<std::string, std::string>& labels) const;
  bool empty() const { return terms_.empty(); }
  // The terms that require a label to hold one of a few values (`k=v`, `k==v`, `k in (a,b)`),
  // as key and values: an object without one of them does not match, so selectors can be
  // indexed by them.
  std::vector<std::pair<std::string, std::vector<std::string>>> RequiredValues() const;

 private:
  struct Term {
    enum class Op { kEq, kNotEq, kExists, kNotExists, kIn, kNotIn };
    std::string key;
    Op op;
    std::vector<std::string> values;
  };
  std::vector<Term> terms_;
};

}  // namespace photon::server
