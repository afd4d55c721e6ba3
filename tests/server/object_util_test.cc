#include "server/object_util.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>

#include "photon/compute.pb.h"
#include "photon/node.pb.h"
#include "photon/storage.pb.h"
#include "server/scheduler/limits.h"

namespace photon::server {
namespace {

TEST(ValidateName, AcceptsDnsLabelsOnly) {
  EXPECT_TRUE(ValidateName("metadata.name", "web-1").ok());
  EXPECT_TRUE(ValidateName("metadata.name", "a").ok());
  for (const char* bad : {"", "-a", "a-", "UPPER", "a_b", "a.b", "ä"}) {
    auto st = ValidateName("metadata.name", bad);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("metadata.name"), std::string::npos);
  }
  EXPECT_FALSE(ValidateName("n", std::string(64, 'a')).ok());
  EXPECT_TRUE(ValidateName("n", std::string(63, 'a')).ok());
}

TEST(ParseJsonObject, RefusesUnknownFieldsNamingThem) {
  const KindInfo& kind = *FindKind("computeinstances");
  auto r = ParseJsonObject(kind, R"({"metadata":{"name":"x"},"spec":{"proces":{}}})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("proces"), std::string::npos) << r.status();
}

TEST(ParseJsonObject, RefusesMalformedJsonAndWrongKind) {
  const KindInfo& kind = *FindKind("computeinstances");
  EXPECT_EQ(ParseJsonObject(kind, "{\"metadata\":").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJsonObject(kind, "[1,2]").status().code(), StatusCode::kInvalidArgument);
  auto r = ParseJsonObject(kind, R"({"kind":"Vpc","metadata":{"name":"x"}})");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ParseJsonObject(kind, R"({"kind":"ComputeInstance","metadata":{"name":"x"}})").ok());
}

TEST(ValidateSpec, NamesTheOffendingField) {
  const KindInfo& kind = *FindKind("computeinstances");
  compute::ComputeInstance ci;
  auto st = ValidateSpec(kind, ci);
  EXPECT_NE(st.message().find("spec"), std::string::npos);
  ci.mutable_spec()->mutable_process()->add_command("/bin/true");
  EXPECT_TRUE(ValidateSpec(kind, ci).ok());
  ci.mutable_spec()->mutable_resources()->set_memory_mb(-1);
  st = ValidateSpec(kind, ci);
  EXPECT_NE(st.message().find("spec.resources.memoryMb"), std::string::npos) << st;
}

TEST(ValidateSpec, ScrapeAnnotationsAreCheckedNotIgnored) {
  const KindInfo& kind = *FindKind("computeinstances");
  auto with = [&](std::map<std::string, std::string> ann) {
    compute::ComputeInstance ci;
    ci.mutable_spec()->mutable_process()->add_command("/bin/true");
    for (auto& [k, v] : ann) (*ci.mutable_metadata()->mutable_annotations())[k] = v;
    return ValidateSpec(kind, ci);
  };
  EXPECT_TRUE(with({{"prometheus.io/scrape", "true"}, {"prometheus.io/port", "9100"}}).ok());
  EXPECT_TRUE(with({{"prometheus.io/scrape", "true"},
                    {"prometheus.io/port", "8080"},
                    {"prometheus.io/path", "/stats/metrics"}})
                  .ok());
  EXPECT_TRUE(with({{"prometheus.io/scrape", "false"}}).ok());
  for (const auto& [ann, field] :
       std::vector<std::pair<std::map<std::string, std::string>, std::string>>{
           {{{"prometheus.io/scrape", "yes"}}, "prometheus.io/scrape"},
           {{{"prometheus.io/scrape", "true"}}, "prometheus.io/port"},
           {{{"prometheus.io/scrape", "true"}, {"prometheus.io/port", "70000"}},
            "prometheus.io/port"},
           {{{"prometheus.io/scrape", "true"}, {"prometheus.io/port", "http"}},
            "prometheus.io/port"},
           {{{"prometheus.io/port", "9100"}}, "prometheus.io/scrape"},
           {{{"prometheus.io/scrape", "true"},
             {"prometheus.io/port", "9100"},
             {"prometheus.io/path", "metrics"}},
            "prometheus.io/path"},
           {{{"prometheus.io/scrape", "true"},
             {"prometheus.io/port", "9100"},
             {"prometheus.io/path", "/m?x=1"}},
            "prometheus.io/path"}}) {
    Status st = with(ann);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(st.message().find("metadata.annotations." + field), std::string::npos) << st;
  }
}

// Sets one quantity of a valid object of `plural` and validates it.
using SetQuantity = std::function<void(google::protobuf::Message*, int64_t)>;
Status ValidateWith(const std::string& plural, const SetQuantity& set, int64_t v) {
  const KindInfo& kind = *FindKind(plural);
  std::unique_ptr<google::protobuf::Message> obj(kind.prototype->New());
  if (plural == "computeinstances") {
    static_cast<compute::ComputeInstance*>(obj.get())
        ->mutable_spec()
        ->mutable_process()
        ->add_command("/bin/true");
  } else if (plural == "flavors") {
    auto* f = static_cast<compute::Flavor*>(obj.get())->mutable_spec();
    f->set_vcpu(1);
    f->set_memory_mb(1);
  } else if (plural == "volumes") {
    static_cast<storage::Volume*>(obj.get())->mutable_spec()->set_size_gb(1);
  }
  set(obj.get(), v);
  return ValidateSpec(kind, *obj);
}

TEST(ValidateSpec, BoundsEveryResourceQuantity) {
  using scheduler::kMaxDiskGb;
  using scheduler::kMaxMemoryMb;
  using scheduler::kMaxReplicas;
  using scheduler::kMaxVcpu;
  using M = google::protobuf::Message*;
  auto ci = [](M m) { return static_cast<compute::ComputeInstance*>(m)->mutable_spec(); };
  auto rs = [](M m) { return static_cast<compute::RegionService*>(m)->mutable_spec(); };
  auto fl = [](M m) { return static_cast<compute::Flavor*>(m)->mutable_spec(); };
  auto nd = [](M m) { return static_cast<node::Node*>(m)->mutable_spec()->mutable_capacity(); };
  struct Case {
    std::string plural, field;
    int64_t max;
    SetQuantity set;
  };
  const std::vector<Case> cases = {
      {"computeinstances", "spec.resources.vcpu", kMaxVcpu,
       [&](M m, int64_t v) { ci(m)->mutable_resources()->set_vcpu(static_cast<int32_t>(v)); }},
      {"computeinstances", "spec.resources.memoryMb", kMaxMemoryMb,
       [&](M m, int64_t v) { ci(m)->mutable_resources()->set_memory_mb(v); }},
      {"computeinstances", "spec.resources.diskGb", kMaxDiskGb,
       [&](M m, int64_t v) { ci(m)->mutable_resources()->set_disk_gb(v); }},
      {"computeinstances", "spec.schedule.replicas", kMaxReplicas,
       [&](M m, int64_t v) { ci(m)->mutable_schedule()->set_replicas(static_cast<int32_t>(v)); }},
      {"regionservices", "spec.replicas", kMaxReplicas,
       [&](M m, int64_t v) { rs(m)->set_replicas(static_cast<int32_t>(v)); }},
      {"regionservices", "spec.template.resources.vcpu", kMaxVcpu,
       [&](M m, int64_t v) {
         rs(m)->mutable_template_()->mutable_resources()->set_vcpu(static_cast<int32_t>(v));
       }},
      {"regionservices", "spec.template.resources.memoryMb", kMaxMemoryMb,
       [&](M m, int64_t v) { rs(m)->mutable_template_()->mutable_resources()->set_memory_mb(v); }},
      {"regionservices", "spec.template.resources.diskGb", kMaxDiskGb,
       [&](M m, int64_t v) { rs(m)->mutable_template_()->mutable_resources()->set_disk_gb(v); }},
      {"flavors", "spec.vcpu", kMaxVcpu,
       [&](M m, int64_t v) { fl(m)->set_vcpu(static_cast<int32_t>(v)); }},
      {"flavors", "spec.memoryMb", kMaxMemoryMb, [&](M m, int64_t v) { fl(m)->set_memory_mb(v); }},
      {"flavors", "spec.diskGb", kMaxDiskGb, [&](M m, int64_t v) { fl(m)->set_disk_gb(v); }},
      {"volumes", "spec.sizeGb", kMaxDiskGb,
       [&](M m, int64_t v) { static_cast<storage::Volume*>(m)->mutable_spec()->set_size_gb(v); }},
      {"nodes", "spec.capacity.vcpu", kMaxVcpu,
       [&](M m, int64_t v) { nd(m)->set_vcpu(static_cast<int32_t>(v)); }},
      {"nodes", "spec.capacity.memoryMb", kMaxMemoryMb,
       [&](M m, int64_t v) { nd(m)->set_memory_mb(v); }},
      {"nodes", "spec.capacity.diskGb", kMaxDiskGb, [&](M m, int64_t v) { nd(m)->set_disk_gb(v); }},
  };
  for (const auto& c : cases) {
    const std::string what = c.plural + " " + c.field;
    EXPECT_TRUE(ValidateWith(c.plural, c.set, c.max).ok()) << what;
    std::vector<int64_t> refused = {c.max + 1, -1};
    // int32 fields cannot hold more; the JSON parser refuses larger numbers for them.
    if (c.max > kMaxReplicas)
      refused.push_back(std::numeric_limits<int64_t>::max());
    else
      refused.push_back(std::numeric_limits<int32_t>::max());
    for (int64_t v : refused) {
      auto st = ValidateWith(c.plural, c.set, v);
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << what << " = " << v;
      EXPECT_NE(st.message().find(c.field), std::string::npos) << st;
      if (v > 0) {
        EXPECT_NE(st.message().find(std::to_string(c.max)), std::string::npos) << st;
      }
    }
  }
}

TEST(ValidateSpec, MaxInt64MemoryFromJsonIsRefused) {
  const KindInfo& kind = *FindKind("computeinstances");
  auto r = ParseJsonObject(kind, R"({"metadata":{"name":"x"},"spec":{"process":{"command":["a"]},)"
                                 R"("resources":{"memoryMb":9223372036854775807}}})");
  ASSERT_TRUE(r.ok()) << r.status();
  auto st = ValidateSpec(kind, **r);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("spec.resources.memoryMb: must be ≤ 67108864"), std::string::npos)
      << st;
}

TEST(LabelSelector, MatchesKubernetesSyntax) {
  google::protobuf::Map<std::string, std::string> labels;
  labels["app"] = "web";
  labels["tier"] = "front";
  auto sel = [&](const std::string& s) {
    auto p = LabelSelector::Parse(s);
    EXPECT_TRUE(p.ok()) << s << ": " << p.status();
    return p->Matches(labels);
  };
  EXPECT_TRUE(sel(""));
  EXPECT_TRUE(sel("app=web"));
  EXPECT_TRUE(sel("app==web,tier"));
  EXPECT_FALSE(sel("app!=web"));
  EXPECT_TRUE(sel("!missing"));
  EXPECT_FALSE(sel("missing"));
  EXPECT_TRUE(sel("tier in (front, back)"));
  EXPECT_FALSE(sel("tier notin (front)"));
  EXPECT_FALSE(LabelSelector::Parse("app in (web").ok());
  EXPECT_FALSE(LabelSelector::Parse("=x").ok());
}

TEST(LabelSelector, RequiredValuesAreTheEqualityAndInTerms) {
  auto sel = LabelSelector::Parse("a=1,b==2,c!=3,d,!e,f in (x, y),g notin (z)");
  ASSERT_TRUE(sel.ok()) << sel.status();
  using Want = std::vector<std::pair<std::string, std::vector<std::string>>>;
  EXPECT_EQ(sel->RequiredValues(), (Want{{"a", {"1"}}, {"b", {"2"}}, {"f", {"x", "y"}}}));
  EXPECT_TRUE(LabelSelector::Parse("c!=3,!e")->RequiredValues().empty());
}

}  // namespace
}  // namespace photon::server

namespace photon::server {
namespace {

TEST(SpecBytes, SameSpecSameBytesWhateverTheMapOrder) {
  // Generation bumps when SpecBytes differ: an unchanged spec with a map must not look changed.
  compute::ComputeInstance a, b;
  for (int i = 0; i < 50; ++i)
    (*a.mutable_spec()->mutable_process()->mutable_env())["K" + std::to_string(i)] = "v";
  for (int i = 49; i >= 0; --i)
    (*b.mutable_spec()->mutable_process()->mutable_env())["K" + std::to_string(i)] = "v";
  EXPECT_EQ(SpecBytes(a), SpecBytes(b));
  (*b.mutable_spec()->mutable_process()->mutable_env())["K7"] = "w";
  EXPECT_NE(SpecBytes(a), SpecBytes(b));
}

}  // namespace
}  // namespace photon::server
