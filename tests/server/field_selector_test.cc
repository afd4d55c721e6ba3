// Field selectors on list and watch (REST and gRPC), the enter/leave events of a filtered
// watch, and what a node agent's credential may read.
#include "server/field_selector.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "photon/compute.pb.h"
#include "photon/service.grpc.pb.h"
#include "test_util.h"

namespace photon::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

TEST(FieldSelectorParse, AcceptsTheKnownFieldsAndOperators) {
  auto s = server::FieldSelector::Parse(
      "metadata.agentId=n1, metadata.name==a,metadata.namespace!=kube,status.phase=RUNNING");
  ASSERT_TRUE(s.ok()) << s.status();
  server::ObjectFields f{
      .name = "a", .namespace_ = "default", .agent_id = "n1", .phase = "RUNNING"};
  EXPECT_TRUE(s->Matches(f));
  f.agent_id = "n2";
  EXPECT_FALSE(s->Matches(f));
  ASSERT_NE(s->RequiredValue("metadata.agentId"), nullptr);
  EXPECT_EQ(*s->RequiredValue("metadata.agentId"), "n1");
  EXPECT_EQ(s->RequiredValue("metadata.namespace"), nullptr);  // a != term requires nothing
  // "" selects unplaced objects.
  auto unplaced = server::FieldSelector::Parse("metadata.agentId=");
  ASSERT_TRUE(unplaced.ok());
  EXPECT_TRUE(unplaced->Matches({.name = "x"}));
  EXPECT_TRUE(server::FieldSelector::Parse("")->empty());
}

TEST(FieldSelectorParse, RefusesWhatItCannotHonourNamingIt) {
  struct Case {
    const char* text;
    const char* named;
  };
  for (const Case& c :
       {Case{"spec.nodeName=n1", "unknown field 'spec.nodeName'"},
        Case{"metadata.agentId", "has no operator"},
        Case{"metadata.agentId=a=b", "may not contain"},
        Case{"status.phase=Running", "'Running' is not a phase"},
        Case{"metadata.name=a,,metadata.agentId=b", "has no operator"},
        Case{"=x", "names no field"}, Case{"metadata.name!x", "'!' must be followed by '='"}}) {
    auto s = server::FieldSelector::Parse(c.text);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(s.status().message()).find(c.named), std::string::npos)
        << c.text << ": " << s.status();
  }
}

// A watch stream read on its own thread. The thread owns its state, so a test that fails
// before the stream ends leaves nothing dangling (the server's stop ends the stream).
class WatchLines {
 public:
  WatchLines(const TestServer& s, const std::string& token, const std::string& target)
      : state_(std::make_shared<State>()) {
    auto client = s.Client(token);
    std::thread([state = state_, client, target]() mutable {
      auto r = client.Stream(target, [&](const std::string& line) {
        std::lock_guard lock(state->mu);
        state->lines.push_back(json::parse(line, nullptr, false));
        return !state->stop;
      });
      std::lock_guard lock(state->mu);
      state->status = r.ok() ? r->status : -1;
      state->ended = true;
    }).detach();
  }
  ~WatchLines() {
    std::lock_guard lock(state_->mu);
    state_->stop = true;
  }
  // Waits (bounded) until some line satisfies `pred`; returns whether one did.
  bool WaitFor(const std::function<bool(const json&)>& pred,
               std::chrono::milliseconds within = std::chrono::seconds(10)) {
    return WaitForLines(
        [&](const std::vector<json>& lines) {
          return std::any_of(lines.begin(), lines.end(), pred);
        },
        within);
  }
  // Waits (bounded) until the lines so far satisfy `pred` (called under the lock).
  bool WaitForLines(const std::function<bool(const std::vector<json>&)>& pred,
                    std::chrono::milliseconds within = std::chrono::seconds(10)) {
    auto deadline = Clock::now() + within;
    while (Clock::now() < deadline) {
      {
        std::lock_guard lock(state_->mu);
        if (pred(state_->lines)) return true;
        if (state_->ended) return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  std::vector<json> Lines() const {
    std::lock_guard lock(state_->mu);
    return state_->lines;
  }

 private:
  struct State {
    std::mutex mu;
    std::vector<json> lines;
    bool stop = false;
    bool ended = false;
    int status = 0;
  };
  std::shared_ptr<State> state_;
};

bool Is(const json& ev, const std::string& type, const std::string& name) {
  return ev.value("type", "") == type && ev.contains("object") &&
         ev["object"]["metadata"].value("name", "") == name;
}

using NameList = std::vector<std::string>;

class FieldSelectorApi : public ::testing::Test {
 protected:
  static server::ServerOptions Options() {
    server::ServerOptions o;
    o.scheduler = false;  // placement is the test's: admin PUTs of metadata.agentId
    return o;
  }
  // Joins `node`, registers its Node READY, and returns the agent's credential.
  std::string JoinNode(const std::string& node) {
    std::string join = Trim(*ReadFile(s_.dir + "/join.token"));
    auto r = s_.Client(join).Do("POST", "/v1/join", R"({"node":")" + node + R"("})");
    EXPECT_EQ(r->status, 201) << r->body;
    std::string token = Json(*r)["token"];
    auto agent = s_.Client(token);
    auto body = R"({"metadata":{"name":")" + node +
                R"("},"spec":{"capacity":{"vcpu":64,"memoryMb":65536},"drivers":["process"]}})";
    EXPECT_EQ(agent.Do("POST", "/v1/namespaces/system/nodes", body)->status, 202);
    auto n = Json(*agent.Do("GET", "/v1/namespaces/system/nodes/" + node));
    n["nodeStatus"]["condition"] = "READY";
    EXPECT_EQ(agent.Do("PUT", "/v1/namespaces/system/nodes/" + node + "/status", n.dump())->status,
              200);
    return token;
  }
  void Create(const std::string& ns, const std::string& name) {
    auto r =
        s_.Admin().Do("POST", "/v1/namespaces/" + ns + "/computeinstances", ProcessInstance(name));
    ASSERT_EQ(r->status, 202) << r->body;
  }
  // Places (or moves) an instance onto `node` as an admin would.
  void Place(const std::string& ns, const std::string& name, const std::string& node) {
    auto c = s_.Admin();
    const std::string path = "/v1/namespaces/" + ns + "/computeinstances/" + name;
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto obj = Json(*c.Do("GET", path));
      obj["metadata"]["agentId"] = node;
      auto r = c.Do("PUT", path, obj.dump());
      if (r->status == 200) return;
      ASSERT_EQ(r->status, 409) << r->body;
    }
    FAIL() << "could not place " << name;
  }
  std::vector<std::string> Names(const std::string& target, const std::string& token = "") {
    auto r = s_.Client(token.empty() ? s_.admin_token : token).Do("GET", target);
    EXPECT_EQ(r->status, 200) << target << ": " << r->body;
    std::vector<std::string> out;
    const json list = Json(*r);
    for (const auto& i : list["items"]) out.push_back(i["metadata"]["name"]);
    return out;
  }

  TestServer s_{Options()};
};

TEST_F(FieldSelectorApi, ListSelectsByNodeNameNamespaceAndPhase) {
  JoinNode("node-a");
  JoinNode("node-b");
  Create("default", "a1");
  Create("default", "b1");
  Create("other", "a2");
  Create("default", "u1");
  Place("default", "a1", "node-a");
  Place("other", "a2", "node-a");
  Place("default", "b1", "node-b");
  EXPECT_EQ(Names("/v1/computeinstances?fieldSelector=metadata.agentId%3Dnode-a"),
            (NameList{"a1", "a2"}));
  EXPECT_EQ(Names("/v1/namespaces/default/computeinstances?fieldSelector=metadata.agentId=node-a"),
            (NameList{"a1"}));
  EXPECT_EQ(Names("/v1/computeinstances?fieldSelector=metadata.agentId="), (NameList{"u1"}));
  EXPECT_EQ(Names("/v1/computeinstances?fieldSelector=metadata.agentId!%3Dnode-a,"
                  "metadata.namespace%3D%3Ddefault"),
            (NameList{"b1", "u1"}));
  EXPECT_EQ(Names("/v1/computeinstances?fieldSelector=metadata.name=b1"), (NameList{"b1"}));
  EXPECT_EQ(Names("/v1/computeinstances?fieldSelector=status.phase=RUNNING"), (NameList{}));
  EXPECT_EQ(Names("/v1/computeinstances?fieldSelector=status.phase!=RUNNING").size(), 4u);
  // With a label selector and paging, still only the selection.
  EXPECT_EQ(
      Names("/v1/computeinstances?limit=1&fieldSelector=metadata.agentId=node-b&labelSelector="),
      (NameList{"b1"}));
}

TEST_F(FieldSelectorApi, BadSelectorsAre400NamingTheProblem) {
  auto c = s_.Admin();
  for (const std::string q : {"fieldSelector=spec.nodeName%3Dn1", "fieldSelector=metadata.agentId",
                              "fieldSelector=status.phase%3Drunning"}) {
    for (const std::string watch : {"", "&watch=true"}) {
      auto r = c.Do("GET", "/v1/computeinstances?" + q + watch);
      EXPECT_EQ(r->status, 400) << q << watch << ": " << r->body;
      EXPECT_NE(r->body.find("fieldSelector"), std::string::npos) << r->body;
    }
  }
  auto r = c.Do("GET", "/v1/computeinstances?fieldSelector=spec.nodeName%3Dn1");
  EXPECT_NE(r->body.find("unknown field 'spec.nodeName'"), std::string::npos) << r->body;
}

TEST_F(FieldSelectorApi, GrpcListAndWatchSelectToo) {
  JoinNode("node-a");
  Create("default", "a1");
  Create("default", "x1");
  Place("default", "a1", "node-a");
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(s_.server->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = api::ResourceService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s_.admin_token);
    api::ListRequest l;
    l.set_kind("computeinstances");
    l.set_field_selector("metadata.agentId=node-a");
    api::ListResponse resp;
    ASSERT_TRUE(stub->List(&ctx, l, &resp).ok());
    ASSERT_EQ(resp.items_size(), 1);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s_.admin_token);
    api::ListRequest l;
    l.set_kind("computeinstances");
    l.set_field_selector("spec.nodeName=node-a");
    api::ListResponse resp;
    auto st = stub->List(&ctx, l, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("spec.nodeName"), std::string::npos) << st.error_message();
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s_.admin_token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    api::WatchRequest w;
    w.set_kind("computeinstances");
    w.set_field_selector("metadata.agentId=node-a");
    auto reader = stub->Watch(&ctx, w);
    api::WatchEvent ev;
    ASSERT_TRUE(reader->Read(&ev));
    compute::ComputeInstance got;
    ASSERT_TRUE(ev.object().UnpackTo(&got));
    EXPECT_EQ(got.metadata().name(), "a1");
    EXPECT_EQ(ev.type(), api::WatchEvent::ADDED);
    ctx.TryCancel();
  }
}

TEST_F(FieldSelectorApi, WatchSendsAddedOnEnteringAndDeletedOnLeaving) {
  JoinNode("node-a");
  JoinNode("node-b");
  Create("default", "m1");
  Create("default", "m2");
  Place("default", "m1", "node-a");
  WatchLines watch(s_, s_.admin_token,
                   "/v1/computeinstances?watch=true&fieldSelector=metadata.agentId%3Dnode-a");
  ASSERT_TRUE(watch.WaitFor([](const json& e) { return Is(e, "ADDED", "m1"); }));
  // m2 enters the selection: ADDED, though the store saw a modification.
  Place("default", "m2", "node-a");
  ASSERT_TRUE(watch.WaitFor([](const json& e) { return Is(e, "ADDED", "m2"); }));
  // m1 leaves it: DELETED with its last state inside the selection.
  Place("default", "m1", "node-b");
  ASSERT_TRUE(watch.WaitFor([](const json& e) { return Is(e, "DELETED", "m1"); }));
  // A change within the selection is a MODIFIED; a change outside it is not sent at all.
  Place("default", "m1", "node-b");  // no-op placement still writes updated_at
  Place("default", "m2", "node-a");
  ASSERT_TRUE(watch.WaitFor([](const json& e) { return Is(e, "MODIFIED", "m2"); }));
  std::vector<std::string> m1_events;
  int64_t last = 0;
  for (const auto& e : watch.Lines()) {
    if (e["type"] == "BOOKMARK") continue;
    if (e["object"]["metadata"]["name"] == "m1") m1_events.push_back(e["type"]);
    if (e["type"] == "DELETED") {
      EXPECT_EQ(e["object"]["metadata"]["agentId"], "node-a") << "the state that matched";
    }
    int64_t rv = std::stoll(e["object"]["metadata"]["resourceVersion"].get<std::string>());
    EXPECT_GT(rv, last) << e.dump();
    last = rv;
  }
  EXPECT_EQ(m1_events, (std::vector<std::string>{"ADDED", "DELETED"}));
  // Resuming from before the move replays the same translation.
  auto lines = watch.Lines();
  std::string from = lines.front()["object"]["metadata"]["resourceVersion"];
  WatchLines resumed(s_, s_.admin_token,
                     "/v1/computeinstances?watch=true&fieldSelector=metadata.agentId%3Dnode-a"
                     "&resourceVersion=" +
                         from);
  EXPECT_TRUE(resumed.WaitFor([](const json& e) { return Is(e, "ADDED", "m2"); }));
  EXPECT_TRUE(resumed.WaitFor([](const json& e) { return Is(e, "DELETED", "m1"); }));
}

TEST_F(FieldSelectorApi, AgentWatchCarriesOnlyItsNodesInstancesOnTheWire) {
  const std::string a = JoinNode("node-a");
  JoinNode("node-b");
  for (int i = 0; i < 6; ++i) {
    const std::string ns = i < 3 ? "default" : "team";
    Create(ns, "p" + std::to_string(i));
    Place(ns, "p" + std::to_string(i), i % 2 ? "node-b" : "node-a");
  }
  WatchLines watch(s_, a,
                   "/v1/computeinstances?watch=true&fieldSelector=metadata.agentId%3Dnode-a");
  for (int i = 0; i < 4; ++i) {
    Create("team", "q" + std::to_string(i));
    Place("team", "q" + std::to_string(i), i % 2 ? "node-b" : "node-a");
  }
  Place("default", "p1", "node-b");  // a change on node-b
  Place("default", "p1", "node-a");  // enters
  Place("default", "p0", "node-b");  // leaves
  Place("default", "p0", "node-b");  // changes while elsewhere
  ASSERT_EQ(s_.Admin().Do("DELETE", "/v1/namespaces/team/computeinstances/p3")->status, 202);
  Create("default", "last");
  Place("default", "last", "node-a");
  ASSERT_TRUE(watch.WaitFor([](const json& e) { return Is(e, "ADDED", "last"); }));
  std::set<std::string> seen;
  for (const auto& e : watch.Lines()) {
    ASSERT_TRUE(e.is_object()) << "a line that is no JSON";
    if (e["type"] == "BOOKMARK") continue;
    EXPECT_EQ(e["object"]["metadata"]["agentId"], "node-a") << e.dump();
    seen.insert(e["object"]["metadata"]["name"]);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"p0", "p1", "p2", "p4", "q0", "q2", "last"}));
}

TEST_F(FieldSelectorApi, AgentCredentialIsRefusedOtherNodesAndNamespaces) {
  const std::string at = JoinNode("node-a"), bt = JoinNode("node-b");
  auto a = s_.Client(at);
  auto b = s_.Client(bt);
  auto admin = s_.Admin();
  Create("default", "mine");
  Place("default", "mine", "node-a");
  Create("default", "theirs");
  Place("default", "theirs", "node-b");
  Create("tenant2", "far");
  Place("tenant2", "far", "node-b");
  for (const std::string ns : {"default", "tenant2"}) {
    auto r = admin.Do("POST", "/v1/namespaces/" + ns + "/images",
                      R"({"metadata":{"name":"img"},"spec":{"sourcePath":"/srv/img"}})");
    ASSERT_EQ(r->status, 202) << r->body;
  }
  // Single reads: its own instance; others' are as if they did not exist.
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/default/computeinstances/mine")->status, 200);
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/default/computeinstances/theirs")->status, 404);
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/tenant2/computeinstances/far")->status, 404);
  EXPECT_EQ(b.Do("GET", "/v1/namespaces/tenant2/computeinstances/far")->status, 200);
  // What its instances may reference: in namespaces where it has work only.
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/default/images/img")->status, 200);
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/tenant2/images/img")->status, 404);
  EXPECT_EQ(b.Do("GET", "/v1/namespaces/tenant2/images/img")->status, 200);
  // Lists and watches must select its own node.
  for (const std::string q :
       {"", "?fieldSelector=metadata.agentId%3Dnode-b", "?fieldSelector=metadata.agentId!%3Dnode-a",
        "?fieldSelector=metadata.name%3Dmine", "?watch=true",
        "?watch=true&fieldSelector=metadata.agentId%3Dnode-b"}) {
    for (const std::string kind : {"computeinstances", "operations"}) {
      auto r = a.Do("GET", "/v1/" + kind + q);
      EXPECT_EQ(r->status, 403) << kind << q << ": " << r->body;
      r = a.Do("GET", "/v1/namespaces/default/" + kind + q);
      EXPECT_EQ(r->status, 403) << kind << q << ": " << r->body;
    }
  }
  EXPECT_EQ(Names("/v1/computeinstances?fieldSelector=metadata.agentId%3Dnode-a", at),
            (NameList{"mine"}));
  // Operations: those about its instances only.
  auto act = admin.Do("POST", "/v1/namespaces/default/computeinstances/theirs/actions/stop", "{}");
  ASSERT_EQ(act->status, 202) << act->body;
  const std::string op = Json(*act)["operation"]["metadata"]["id"];
  EXPECT_EQ(a.Do("GET", "/v1/operations/" + op)->status, 404);
  EXPECT_EQ(a.Do("GET", "/v1/namespaces/default/operations/" + op)->status, 404);
  EXPECT_EQ(b.Do("GET", "/v1/operations/" + op)->status, 200);
  EXPECT_EQ(b.Do("GET", "/v1/namespaces/default/operations/" + op)->status, 200);
  EXPECT_EQ(Names("/v1/operations?fieldSelector=metadata.agentId%3Dnode-a", at), (NameList{}));
  EXPECT_EQ(Names("/v1/operations?fieldSelector=metadata.agentId%3Dnode-b", bt), (NameList{op}));
  // gRPC: the same rule.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(s_.server->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = api::ResourceService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + at);
  api::ListRequest l;
  l.set_kind("computeinstances");
  api::ListResponse resp;
  EXPECT_EQ(stub->List(&ctx, l, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST(WatchBookmarks, IdleWatchGetsBookmarksItCanResumeFrom) {
  server::ServerOptions opts;
  opts.watch_bookmark_interval_ms = 200;
  TestServer s(opts);
  auto list = Json(*s.Admin().Do("GET", "/v1/computeinstances"));
  const int64_t listed = std::stoll(list["resourceVersion"].get<std::string>());
  WatchLines watch(s, s.admin_token,
                   "/v1/computeinstances?watch=true&fieldSelector=metadata.agentId%3Dnobody");
  auto bookmarks = [](const std::vector<json>& lines) {
    std::vector<int64_t> out;
    for (const auto& e : lines) {
      EXPECT_EQ(e["type"], "BOOKMARK") << "an idle watch carries bookmarks only: " << e.dump();
      out.push_back(std::stoll(e["object"]["metadata"]["resourceVersion"].get<std::string>()));
    }
    return out;
  };
  ASSERT_TRUE(watch.WaitForLines([&](const auto& lines) { return bookmarks(lines).size() >= 2; }));
  // Changes outside the selection advance the bookmarks' version.
  ASSERT_EQ(s.Admin()
                .Do("POST", "/v1/namespaces/default/computeinstances", ProcessInstance("o1"))
                ->status,
            202);
  auto created = Json(*s.Admin().Do("GET", "/v1/namespaces/default/computeinstances/o1"));
  const int64_t at = std::stoll(created["metadata"]["resourceVersion"].get<std::string>());
  ASSERT_TRUE(watch.WaitForLines([&](const auto& lines) { return bookmarks(lines).back() >= at; }));
  auto seen = bookmarks(watch.Lines());
  EXPECT_GE(seen.front(), listed);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  // A client resumes from a bookmark and gets what came after it.
  WatchLines resumed(
      s, s.admin_token,
      "/v1/computeinstances?watch=true&resourceVersion=" + std::to_string(seen.front()));
  EXPECT_TRUE(resumed.WaitFor([](const json& e) { return Is(e, "ADDED", "o1"); }));
}

// A peer that answers a watch, sends one line and then goes silent without closing (a dropped
// connection): the client's read deadline, three announced bookmark intervals, ends the stream.
TEST(WatchBookmarks, ClientDropsAStreamThatFallsSilent) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(lfd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::atomic<int> conn{-1};
  std::thread peer([&] {
    int c = accept(lfd, nullptr, nullptr);
    char req[4096];
    (void)!read(c, req, sizeof req);
    const std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
        "Photon-Bookmark-Interval-Ms: 100\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string line = "{\"type\":\"BOOKMARK\"}\n";
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", line.size());
    const std::string out = head + size + line + "\r\n";
    (void)!write(c, out.data(), out.size());
    conn = c;  // held open, silent, until the test ends
  });
  auto client =
      *cli::HttpClient::Create("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), "");
  int lines = 0;
  auto t0 = Clock::now();
  auto r = client.Stream("/v1/computeinstances?watch=true", [&](const std::string&) {
    ++lines;
    return true;
  });
  auto took = Clock::now() - t0;
  peer.join();
  close(conn);
  close(lfd);
  EXPECT_EQ(lines, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::seconds(5));
}

}  // namespace
}  // namespace photon::testing
