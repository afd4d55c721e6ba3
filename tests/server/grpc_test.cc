// The gRPC transport: the same verbs, objects as Any, bearer token in metadata.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "photon/compute.pb.h"
#include "photon/service.grpc.pb.h"
#include "test_util.h"

namespace photon::testing {
namespace {

TEST(Grpc, RoundTripAndWatch) {
  TestServer s;
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(s.server->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = api::ResourceService::NewStub(channel);

  compute::ComputeInstance ci;
  ci.mutable_metadata()->set_name("g1");
  ci.mutable_spec()->mutable_process()->add_command("/bin/true");
  api::CreateRequest req;
  req.set_namespace_("default");
  req.mutable_object()->PackFrom(ci);
  {
    grpc::ClientContext ctx;
    api::CreateResponse resp;
    auto st = stub->Create(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s.admin_token);
    api::CreateResponse resp;
    auto st = stub->Create(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(resp.operation().metadata().id().empty());
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s.admin_token);
    api::GetRequest g;
    g.set_kind("computeinstances");
    g.set_namespace_("default");
    g.set_name("g1");
    api::GetResponse resp;
    ASSERT_TRUE(stub->Get(&ctx, g, &resp).ok());
    compute::ComputeInstance got;
    ASSERT_TRUE(resp.object().UnpackTo(&got));
    EXPECT_EQ(got.metadata().name(), "g1");
    EXPECT_EQ(got.metadata().created_by(), "admin");
    EXPECT_EQ(got.spec().process().command(0), "/bin/true");
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s.admin_token);
    api::GetRequest g;
    g.set_kind("computeinstances");
    g.set_name("missing");
    api::GetResponse resp;
    EXPECT_EQ(stub->Get(&ctx, g, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s.admin_token);
    api::ListRequest l;
    l.set_kind("computeinstances");
    l.set_namespace_("default");
    api::ListResponse resp;
    ASSERT_TRUE(stub->List(&ctx, l, &resp).ok());
    EXPECT_EQ(resp.items_size(), 1);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s.admin_token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    api::WatchRequest w;
    w.set_kind("computeinstances");
    w.set_namespace_("default");
    auto reader = stub->Watch(&ctx, w);
    api::WatchEvent ev;
    ASSERT_TRUE(reader->Read(&ev));
    EXPECT_EQ(ev.type(), api::WatchEvent::ADDED);
    compute::ComputeInstance got;
    ASSERT_TRUE(ev.object().UnpackTo(&got));
    EXPECT_EQ(got.metadata().name(), "g1");
    ctx.TryCancel();
  }
  // Every unary call is counted by method and code and timed; the refused create too.
  auto m = s.Client("").Do("GET", "/metrics");
  ASSERT_TRUE(m.ok());
  const std::string& text = m->body;
  EXPECT_NE(text.find("photon_grpc_requests_total{code=\"16\",method=\"Create\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("photon_grpc_requests_total{code=\"0\",method=\"Create\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("photon_grpc_request_duration_seconds_count{method=\"Create\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("photon_grpc_request_duration_seconds_count{method=\"Get\"} 2"),
            std::string::npos);
  EXPECT_EQ(text.find("photon_grpc_request_duration_seconds_count{method=\"Watch\"}"),
            std::string::npos);
}

}  // namespace
}  // namespace photon::testing
