// The metadata service on a bed host: two port namespaces made by PortManager, the service on
// 169.254.1.2:80 in the host's namespace, real curl from inside each port. Each instance gets
// only its own data; a spoofed source gets nothing; IMDSv2 tokens are required and bound to
// the instance. Needs root (namespaces).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/metadata/metadata_service.h"
#include "agent/net/port_manager.h"
#include "tests/net/netbed.h"

namespace photon::agent::metadata {
namespace {

using net::Direction;
using net::PortManager;
using net::PortSpec;
using photon::net_testing::NetBed;

// The agent's side, as a plain table: the interface is what the service is tested through.
class Table : public InstanceDirectory {
 public:
  std::optional<InstanceMetadata> FindByAddress(const std::string& ip) const override {
    auto it = by_ip.find(ip);
    if (it == by_ip.end()) return std::nullopt;
    return it->second;
  }
  std::map<std::string, InstanceMetadata> by_ip;
};

InstanceMetadata Md(const std::string& id, const std::string& ip, const std::string& mac) {
  InstanceMetadata m;
  m.id = id;
  m.name = "vm-" + id;
  m.namespace_ = "team-a";
  m.hostname = "vm-" + id;
  m.ip = ip;
  m.mac = mac;
  m.subnet_cidr = "10.10.0.0/24";
  m.vpc_cidr = "10.10.0.0/16";
  m.availability_zone = "az1";
  m.public_keys = {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + id + " user@" + id};
  m.user_data = "#cloud-config\nhostname: " + id + "\n";
  return m;
}

PortSpec Port(const InstanceMetadata& m) {
  PortSpec s;
  s.instance_id = m.id;
  s.ip = m.ip;
  s.mac = m.mac;
  s.subnet_cidr = m.subnet_cidr;
  s.vpc_cidr = m.vpc_cidr;
  s.rules.push_back({Direction::kEgress, -1, 0, 0, "0.0.0.0/0"});
  return s;
}

class MetadataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    std::string error;
    bed_ = NetBed::Up(1, &error);
    ASSERT_NE(bed_, nullptr) << error;
    net::PortManagerOptions o;
    o.host_netns = bed_->NsPath(bed_->Host(1));
    o.netns_prefix = bed_->Ns(bed_->Host(1)) + "-p-";
    auto pm = PortManager::Open(o);
    ASSERT_TRUE(pm.ok()) << pm.status();
    pm_ = std::move(*pm);
    for (const auto& m :
         {Md("ia", "10.10.0.5", "02:00:0a:0a:00:05"), Md("ib", "10.10.0.6", "02:00:0a:0a:00:06")}) {
      table_.by_ip[m.ip] = m;
      ASSERT_TRUE(pm_->Apply(Port(m)).ok());
    }
    MetadataServiceOptions mo;
    mo.netns = bed_->NsPath(bed_->Host(1));
    auto svc = MetadataService::Start(mo, &table_);
    ASSERT_TRUE(svc.ok()) << svc.status();
    svc_ = std::move(*svc);
  }
  void TearDown() override {
    if (svc_) svc_->Stop();
    if (pm_) {
      for (const auto& p : pm_->List()) EXPECT_TRUE(pm_->Delete(p.instance_id).ok());
    }
    bed_.reset();
  }
  // curl from inside instance `id`'s port namespace: the body, or "HTTP <code>" with `code`.
  std::string Curl(const std::string& id, std::vector<std::string> args, bool code = false,
                   int* rc = nullptr) {
    std::vector<std::string> argv{"curl", "-s", "-m", "3"};
    if (code) argv.insert(argv.end(), {"-o", "/dev/null", "-w", "HTTP %{http_code}"});
    argv.insert(argv.end(), args.begin(), args.end());
    return bed_->Run(pm_->NetnsPath(id), argv, rc);
  }
  std::string Token(const std::string& id) {
    return Curl(id, {"-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60",
                     "http://169.254.1.2/latest/api/token"});
  }

  std::unique_ptr<NetBed> bed_;
  std::unique_ptr<PortManager> pm_;
  Table table_;
  std::unique_ptr<MetadataService> svc_;
};

TEST_F(MetadataTest, EachInstanceReadsOnlyItsOwnOpenStackData) {
  for (const std::string id : {"ia", "ib"}) {
    const auto& m = table_.by_ip[id == "ia" ? "10.10.0.5" : "10.10.0.6"];
    auto md = nlohmann::json::parse(
        Curl(id, {"http://169.254.1.2/openstack/latest/meta_data.json"}), nullptr, false);
    ASSERT_TRUE(md.is_object()) << id;
    EXPECT_EQ(md.value("uuid", ""), m.id);
    EXPECT_EQ(md.value("hostname", ""), m.hostname);
    EXPECT_EQ(md["public_keys"].value("key-0", ""), m.public_keys[0]);
    EXPECT_EQ(Curl(id, {"http://169.254.1.2/openstack/latest/user_data"}), m.user_data);
    auto nd = nlohmann::json::parse(
        Curl(id, {"http://169.254.1.2/openstack/latest/network_data.json"}), nullptr, false);
    ASSERT_TRUE(nd.is_object()) << id;
    EXPECT_EQ(nd["networks"][0].value("ip_address", ""), m.ip);
    EXPECT_EQ(nd["links"][0].value("ethernet_mac_address", ""), m.mac);
  }
  // The node itself (no instance has its address) gets nothing.
  int rc = 0;
  std::string out =
      bed_->Run(bed_->Host(1),
                {"curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "HTTP %{http_code}",
                 "http://169.254.1.2/openstack/latest/meta_data.json"},
                &rc);
  EXPECT_EQ(out, "HTTP 403");
}

TEST_F(MetadataTest, SpoofedSourceIsDropped) {
  // As root (the workload could not: no CAP_NET_ADMIN there), give ia's eth0 ib's address
  // too and ask with it as the source: the port's anti-spoof rule drops it before the node.
  bed_->Run(pm_->NetnsPath("ia"), {"ip", "addr", "add", "10.10.0.6/32", "dev", "eth0"});
  int rc = 0;
  std::string out =
      Curl("ia", {"--interface", "10.10.0.6", "http://169.254.1.2/openstack/latest/meta_data.json"},
           false, &rc);
  EXPECT_NE(rc, 0) << "a spoofed request was answered: " << out;
  EXPECT_EQ(out.find("ib"), std::string::npos) << out;
  std::string counter =
      bed_->Run(pm_->NetnsPath("ia"), {"nft", "list", "counter", "inet", "photon", "spoofed"});
  EXPECT_EQ(counter.find("packets 0 "), std::string::npos) << counter;
  // Its own address still works.
  EXPECT_NE(Curl("ia", {"http://169.254.1.2/openstack/latest/meta_data.json"}).find("\"ia\""),
            std::string::npos);
}

TEST_F(MetadataTest, Ec2LayoutNeedsATokenOfItsOwn) {
  const std::string url = "http://169.254.1.2/latest/meta-data/instance-id";
  EXPECT_EQ(Curl("ia", {url}, true), "HTTP 401") << "IMDSv1 (no token) must be refused";
  const std::string ta = Token("ia");
  ASSERT_EQ(ta.size(), 64u) << ta;
  const std::string ha = "X-aws-ec2-metadata-token: " + ta;
  EXPECT_EQ(Curl("ia", {"-H", ha, url}), "ia");
  EXPECT_EQ(Curl("ia", {"-H", ha, "http://169.254.1.2/latest/meta-data/local-ipv4"}), "10.10.0.5");
  EXPECT_EQ(Curl("ia", {"-H", ha, "http://169.254.1.2/latest/meta-data/public-keys/"}), "0=key-0");
  EXPECT_EQ(Curl("ia", {"-H", ha, "http://169.254.1.2/latest/meta-data/public-keys/0/openssh-key"}),
            table_.by_ip["10.10.0.5"].public_keys[0]);
  EXPECT_NE(Curl("ia", {"-H", ha, "http://169.254.1.2/latest/meta-data/"}).find("public-keys/"),
            std::string::npos);
  EXPECT_EQ(Curl("ia", {"-H", ha, "http://169.254.1.2/latest/user-data"}),
            table_.by_ip["10.10.0.5"].user_data);
  // Another instance's token, a made-up one, a bad TTL, a proxied token request.
  EXPECT_EQ(Curl("ib", {"-H", ha, url}, true), "HTTP 401");
  EXPECT_EQ(Curl("ib", {"-H", "X-aws-ec2-metadata-token: " + std::string(64, 'a'), url}, true),
            "HTTP 401");
  EXPECT_EQ(Curl("ib",
                 {"-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 0",
                  "http://169.254.1.2/latest/api/token"},
                 true),
            "HTTP 400");
  EXPECT_EQ(Curl("ib",
                 {"-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60", "-H",
                  "X-Forwarded-For: 192.0.2.1", "http://169.254.1.2/latest/api/token"},
                 true),
            "HTTP 403");
  const std::string tb = Token("ib");
  EXPECT_EQ(Curl("ib", {"-H", "X-aws-ec2-metadata-token: " + tb, url}), "ib");
}

}  // namespace
}  // namespace photon::agent::metadata
