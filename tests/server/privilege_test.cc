// Host privileges (spec.security.privileged) are an admin's grant: an editor of a namespace
// who could set them would be root on every node (src/server/privilege.h).
#include <gtest/gtest.h>

#include "test_util.h"

namespace photon::testing {
namespace {

using json = nlohmann::json;

std::string Privileged(const std::string& name) {
  json obj = json::parse(ProcessInstance(name));
  obj["spec"]["security"] = {{"privileged", true}};
  return obj.dump();
}

TEST(PrivilegeTest, OnlyAClusterAdminGrantsHostPrivileges) {
  TestServer s;
  auto admin = s.Admin();
  auto token_for = [&](const std::string& who, const std::string& ns, const std::string& role) {
    json body = {{"principal", who},
                 {"bindings", json::array({{{"namespace", ns}, {"role", role}}})}};
    auto r = admin.Do("POST", "/v1/tokens", body.dump());
    EXPECT_EQ(r->status, 201) << r->body;
    return json::parse(r->body)["token"].get<std::string>();
  };
  auto editor = s.Client(token_for("mallory", "team-a", "editor"));
  auto ns_admin = s.Client(token_for("nadia", "team-a", "admin"));
  for (auto* c : {&editor, &ns_admin}) {
    auto r = c->Do("POST", "/v1/namespaces/team-a/computeinstances", Privileged("root-please"));
    EXPECT_EQ(r->status, 403) << r->body;
    EXPECT_NE(r->body.find("spec.security.privileged"), std::string::npos) << r->body;
  }
  // Nor through a RegionService's template, which the controller turns into instances.
  json rs = {{"metadata", {{"name", "fleet"}}},
             {"spec", {{"replicas", 1}, {"template", json::parse(Privileged("x"))["spec"]}}}};
  auto r = editor.Do("POST", "/v1/namespaces/team-a/regionservices", rs.dump());
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(r->body.find("spec.template.security.privileged"), std::string::npos) << r->body;
  // The cluster admin may; the editor then may not keep the grant in an update of its own.
  ASSERT_EQ(
      admin.Do("POST", "/v1/namespaces/team-a/computeinstances", Privileged("granted"))->status,
      202);
  auto got = editor.Do("GET", "/v1/namespaces/team-a/computeinstances/granted");
  ASSERT_EQ(got->status, 200) << got->body;
  json obj = json::parse(got->body);
  obj["spec"]["process"]["command"] = json::array({"/bin/sh", "-c", "cat /etc/shadow"});
  r = editor.Do("PUT", "/v1/namespaces/team-a/computeinstances/granted", obj.dump());
  EXPECT_EQ(r->status, 403) << r->body;
  // Unprivileged instances are the editor's to create as ever.
  EXPECT_EQ(
      editor.Do("POST", "/v1/namespaces/team-a/computeinstances", ProcessInstance("plain"))->status,
      202);
}

}  // namespace
}  // namespace photon::testing
