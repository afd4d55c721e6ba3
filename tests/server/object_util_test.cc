#include "server/object_util.h"

#include <gtest/gtest.h>

#include "photon/compute.pb.h"

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
