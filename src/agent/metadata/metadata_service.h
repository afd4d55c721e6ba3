// The node's metadata service (seed 003): HTTP on 169.254.1.2:80 in the node's network
// namespace, reached from every port namespace through its veth (the port's default route).
// The instance is known by the packet's source address, which it cannot forge (the port's
// anti-spoofing rule and strict rp_filter drop any other source), and only its own data is
// served. Layouts (docs/network-node.md "Metadata service"), enough for Debian's cloud-init:
//
//   OpenStack  /openstack, /openstack/latest/{meta_data.json, user_data, network_data.json,
//              vendor_data.json, vendor_data2.json}
//   EC2        PUT /latest/api/token (IMDSv2; X-aws-ec2-metadata-token-ttl-seconds 1..21600)
//              GET /latest/meta-data/..., /latest/user-data,
//              /latest/dynamic/instance-identity/document — each with the header
//              X-aws-ec2-metadata-token (required: IMDSv1 without a token is 401, as AWS's
//              HttpTokens=required). A token is bound to the address that asked for it.
//
// Thread-safe. The data comes from an InstanceDirectory the agent implements.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/http_server.h"
#include "common/status.h"

namespace photon::agent::metadata {

// What the service tells an instance about itself.
struct InstanceMetadata {
  std::string id;          // metadata.id: instance-id / uuid
  std::string name;        // the instance's name
  std::string namespace_;  // its namespace (OpenStack project_id)
  std::string hostname;    // what cloud-init sets (defaults to name)
  std::string ip;          // its VPC address
  std::string mac;         // its interface's MAC
  std::string subnet_cidr;
  std::string vpc_cidr;
  std::string availability_zone;
  std::vector<std::string> dns_nameservers;
  std::vector<std::string> public_keys;  // OpenSSH authorized_keys lines
  std::string user_data;                 // "" = none (404, as both layouts do)
};

// The agent's view of the instances on this node, by VPC address.
class InstanceDirectory {
 public:
  virtual ~InstanceDirectory() = default;
  virtual std::optional<InstanceMetadata> FindByAddress(const std::string& ip) const = 0;
};

struct MetadataServiceOptions {
  std::string listen = "169.254.1.2:80";
  // Network namespace to listen in (/run/netns/NAME), "" = this process's (the node's).
  std::string netns;
  int threads = 2;
  int max_tokens = 10000;  // IMDSv2 tokens alive at once (beyond: 503)
};

class MetadataService {
 public:
  static StatusOr<std::unique_ptr<MetadataService>> Start(MetadataServiceOptions options,
                                                          const InstanceDirectory* directory);
  ~MetadataService();
  void Stop();
  int port() const;
  // The answer to one request (public for tests without sockets).
  HttpResponse Handle(const HttpRequest& req);

 private:
  using Clock = std::chrono::steady_clock;
  MetadataService(MetadataServiceOptions options, const InstanceDirectory* directory)
      : options_(std::move(options)), directory_(directory) {}
  HttpResponse PutToken(const HttpRequest& req, const std::string& ip);
  bool TokenValid(const std::string& token, const std::string& ip);
  HttpResponse OpenStack(const std::vector<std::string>& path, const InstanceMetadata& md);
  HttpResponse Ec2(const std::vector<std::string>& path, const InstanceMetadata& md);

  const MetadataServiceOptions options_;
  const InstanceDirectory* directory_;
  std::unique_ptr<HttpServer> http_;
  std::mutex mu_;
  struct Token {
    std::string ip;
    Clock::time_point expires;
  };
  std::map<std::string, Token> tokens_;
};

}  // namespace photon::agent::metadata
