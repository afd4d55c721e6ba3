// A Debian 12 cloud image (scripts/make-cloud-image.sh: debootstrap + Debian's cloud-init,
// unmodified) boots as a VM instance under TCG on the multi-host bed: the guest takes its address
// from the config drive, cloud-init reads the metadata service at 169.254.1.2 (OpenStack layout)
// and applies the hostname, the SSH key (the instance's photon.io/ssh-authorized-keys
// annotation) and the user_data (a script that pings a process instance on another host and
// writes what it saw). From that other instance's port namespace, ssh with the matching private
// key gets in (another key does not) and reads all of it. Needs root; slow (ctest label slow,
// not in the default run: ctest -L slow). The image is built on first use and cached
// (build/cloud-image; the debootstrap tree in /var/cache/photon/cloud-image).
#include "tests/net/bed_cluster.h"

namespace photon::agent::testing {
namespace {

using json = nlohmann::json;

std::string ImageDir() { return PHOTON_CLOUD_IMAGE_DIR; }
std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

class CloudImageTest : public BedClusterTest<CloudImageTest> {
 public:
  // h1 runs the VM, h2 the process instance the guest pings and ssh runs from.
  static BedOptions Options() {
    BedOptions o;
    o.hosts = 2;
    o.tag = "c";
    o.agent_yaml = [](const std::string&) {
      // The guest says PHOTON-READY once cloud-init's last stage is done: a Debian boot plus
      // cloud-init under TCG on a shared 2-core machine takes minutes.
      return "drivers:\n  vm: {ready_timeout_s: \"1200\", images_root: \"" + ImageDir() +
             "\"}\n  container: {enabled: \"false\"}\n";
    };
    o.prepare = [](const std::string& dir) -> std::string {
      const int64_t t0 = MonotonicNanos();
      auto built = RunCommand(
          {"bash", std::string(PHOTON_SOURCE_DIR) + "/scripts/make-cloud-image.sh", ImageDir()},
          std::chrono::seconds(1800));
      if (!built.ok()) return built.status().ToString();
      if (built->exit_code != 0) return built->output;
      std::printf("[ figure ] cloud image ready (build or cache check): %.1f s\n",
                  static_cast<double>(MonotonicNanos() - t0) / 1e9);
      // The key pair the instance is given (public half) and ssh logs in with (private half).
      for (const char* k : {"key", "other-key"}) {
        auto gen = RunCommand({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                               std::string("photon-test-") + k, "-f", dir + "/" + k},
                              std::chrono::seconds(30));
        if (!gen.ok() || gen->exit_code != 0) return "ssh-keygen failed";
      }
      return "";
    };
    o.ready_timeout = std::chrono::seconds(90);  // the vm driver probes the accelerator first
    o.delete_timeout = std::chrono::seconds(90);
    return o;
  }
  static void SetUpTestSuite() {
    BedClusterTest::SetUpTestSuite();
    if (::geteuid() != 0 || ::testing::Test::HasFatalFailure()) return;
    const std::vector<std::pair<std::string, std::string>> images = {
        {"vmlinuz", "kernel"}, {"initrd.img", "initrd"}, {"root.qcow2", "qcow2"}};
    for (const auto& [file, format] : images) {
      const std::string name = "debian-" + format;
      auto posted = Call("POST", "/v1/namespaces/default/images",
                         {{"metadata", {{"name", name}}},
                          {"spec",
                           {{"sourcePath", ImageDir() + "/" + file},
                            {"format", format},
                            {"sha256", Trim(Slurp(ImageDir() + "/" + file + ".sha256"))}}}});
      ASSERT_EQ(posted.status / 100, 2) << posted.body;
    }
  }

 protected:
  std::string ConsolePath(const std::string& id) {
    return *dir_ + "/agent-" + Node(1) + "/providers/vm/instances/" + id + "/console.log";
  }
  // ssh from port namespace `ns` to debian@ip with private key `key`; the exit code in *rc.
  std::string Ssh(const std::string& ns, const std::string& ip, const std::string& key,
                  const std::string& command, int* rc) {
    return bed_->Run(
        ns,
        {"ssh", "-i", *dir_ + "/" + key, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o",
         "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
         "-o", "LogLevel=ERROR", "debian@" + ip, command},
        rc);
  }
};

TEST_F(CloudImageTest, CloudInitAppliesHostnameKeyAndUserDataFromTheMetadataService) {
  const std::string p = Name("cp"), v = Name("deb");
  Create(p, 2,
         {{"process", {{"command", {"/usr/bin/python3", "-c", kGreetingServer}}}},
          {"resources", {{"vcpu", 1}, {"memoryMb", "64"}}}});
  json ip_json = WaitRunning(p, 40s);
  ASSERT_TRUE(ip_json.is_object());
  const std::string ip_p = Address(ip_json), ns_p = PortNs(2, ip_json);

  // user_data: a shell script cloud-init runs once (scripts-user, in its last stage).
  const std::string nonce = std::to_string(MonotonicNanos());
  const std::string user_data =
      "#!/bin/sh\n"
      "echo \"user-data ran " +
      nonce +
      " as $(id -un)\" > /var/tmp/photon-user-data\n"
      "if ping -c 3 -w 30 " +
      ip_p +
      " > /var/tmp/photon-ping 2>&1; then echo PING-OK; else echo "
      "PING-FAIL; fi >> /var/tmp/photon-user-data\n";
  const std::string pubkey = Trim(Slurp(*dir_ + "/key.pub"));
  ASSERT_FALSE(pubkey.empty());
  json spec = {{"vm",
                {{"kernel", "debian-kernel"},
                 {"initrd", "debian-initrd"},
                 {"image", "debian-qcow2"},
                 {"kernelArgs", Trim(Slurp(ImageDir() + "/cmdline"))}}},
               {"resources", {{"vcpu", 1}, {"memoryMb", "768"}}},
               {"userData", user_data},
               {"schedule", {{"nodes", {Node(1)}}}}};
  json inst = {
      {"metadata", {{"name", v}, {"annotations", {{"photon.io/ssh-authorized-keys", pubkey}}}}},
      {"spec", spec}};
  const int64_t t0 = MonotonicNanos();
  auto posted = Call("POST", "/v1/namespaces/default/computeinstances", inst);
  ASSERT_TRUE(posted.status == 201 || posted.status == 202) << posted.status << " " << posted.body;
  created_.push_back(v);
  const std::string id = Get(InstancePath(v))["metadata"].value("id", "");
  ASSERT_FALSE(id.empty());

  // RUNNING = the guest printed PHOTON-READY, which the image does after cloud-final.
  json iv = WaitRunning(v, 1200s);
  ASSERT_TRUE(iv.is_object()) << Slurp(ConsolePath(id)) << AgentLog(1);
  const double running_s = static_cast<double>(MonotonicNanos() - t0) / 1e9;
  const std::string ip_v = Address(iv);
  std::string console = Slurp(ConsolePath(id));
  EXPECT_NE(console.find("PHOTON-CLOUD-INIT status: done"), std::string::npos) << console;

  // ssh from the process instance's port namespace on host 2, with the instance's key.
  int rc = -1;
  std::string out;
  ASSERT_TRUE(WaitFor(
      [&] {
        out = Ssh(ns_p, ip_v, "key", "true", &rc);
        return rc == 0;
      },
      120s))
      << out << "\n"
      << console;
  const double ssh_s = static_cast<double>(MonotonicNanos() - t0) / 1e9;
  std::printf(
      "[ figure ] Debian cloud image under TCG: create -> RUNNING (cloud-init done) %.1f s, "
      "create -> ssh from another host works %.1f s\n",
      running_s, ssh_s);

  // cloud-init is done, with no errors, and used the metadata service (not the config drive).
  out = Ssh(ns_p, ip_v, "key", "cloud-init status --wait --long", &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("status: done"), std::string::npos) << out;
  out = Ssh(ns_p, ip_v, "key", "cat /run/cloud-init/instance-data.json", &rc);
  ASSERT_EQ(rc, 0) << out;
  json data = json::parse(out, nullptr, false);
  ASSERT_TRUE(data.is_object()) << out;
  EXPECT_EQ(data["v1"].value("platform", ""), "openstack") << out;
  EXPECT_EQ(data["v1"].value("subplatform", ""), "metadata (http://169.254.1.2)") << out;
  EXPECT_EQ(data["v1"].value("instance_id", ""), id) << out;

  // The hostname from the metadata (the image itself says "localhost").
  out = Ssh(ns_p, ip_v, "key", "hostname", &rc);
  EXPECT_EQ(Trim(out), v) << out;
  // The key from the metadata is the default user's; the user_data ran, and pinged host 2.
  out = Ssh(ns_p, ip_v, "key", "cat .ssh/authorized_keys", &rc);
  EXPECT_NE(out.find(pubkey), std::string::npos) << out;
  out = Ssh(ns_p, ip_v, "key", "cat /var/tmp/photon-user-data /var/tmp/photon-ping", &rc);
  EXPECT_NE(out.find("user-data ran " + nonce + " as root"), std::string::npos) << out;
  EXPECT_NE(out.find("PING-OK"), std::string::npos) << out;
  // The address is the one the config drive gave (the instance's first address).
  out = Ssh(ns_p, ip_v, "key", "ip -4 -o addr show dev eth0", &rc);
  EXPECT_NE(out.find("inet " + ip_v + "/32"), std::string::npos) << out;

  // Another key is refused: the login above was the metadata's key, not an open door.
  out = Ssh(ns_p, ip_v, "other-key", "true", &rc);
  EXPECT_EQ(rc, 255) << out;
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out;
}

}  // namespace
}  // namespace photon::agent::testing
