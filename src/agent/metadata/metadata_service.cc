// See metadata_service.h.
#include "agent/metadata/metadata_service.h"

#include <fcntl.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "common/util.h"

namespace photon::agent::metadata {

namespace {

using nlohmann::json;

constexpr char kTokenHeader[] = "x-aws-ec2-metadata-token";
constexpr char kTtlHeader[] = "x-aws-ec2-metadata-token-ttl-seconds";
constexpr int kMaxTtlSeconds = 21600;  // AWS's limit: 6 hours

HttpResponse Text(int status, std::string body) {
  return HttpResponse::Text(status, std::move(body));
}

HttpResponse NotFound() { return Text(404, "Not Found\n"); }

// The listing of a directory node as EC2 shows it: one entry a line, directories with '/'.
std::string Listing(const json& dir) {
  std::string out;
  for (const auto& [k, v] : dir.items()) {
    out += (out.empty() ? "" : "\n") + k + (v.is_object() ? "/" : "");
  }
  return out;
}

std::string Key(size_t i) { return "key-" + std::to_string(i); }

// The meta-data tree of one instance (leaves are strings).
json Ec2Tree(const InstanceMetadata& md) {
  json iface = {{"device-number", "0"},
                {"local-ipv4s", md.ip},
                {"mac", md.mac},
                {"subnet-ipv4-cidr-block", md.subnet_cidr},
                {"vpc-ipv4-cidr-block", md.vpc_cidr}};
  json keys = json::object();
  for (size_t i = 0; i < md.public_keys.size(); ++i)
    keys[std::to_string(i)] = {{"openssh-key", md.public_keys[i]}};
  return {{"ami-id", "photon"},
          {"hostname", md.hostname},
          {"instance-id", md.id},
          {"instance-type", "photon"},
          {"local-hostname", md.hostname},
          {"local-ipv4", md.ip},
          {"mac", md.mac},
          {"network", {{"interfaces", {{"macs", {{md.mac, iface}}}}}}},
          {"placement", {{"availability-zone", md.availability_zone}}},
          {"public-keys", keys}};
}

}  // namespace

StatusOr<std::unique_ptr<MetadataService>> MetadataService::Start(
    MetadataServiceOptions options, const InstanceDirectory* directory) {
  std::unique_ptr<MetadataService> svc(new MetadataService(std::move(options), directory));
  HttpServerOptions http;
  http.listen = svc->options_.listen;
  http.threads = svc->options_.threads;
  http.max_body_bytes = 4096;  // nothing here takes a body
  http.name = "metadata";
  auto handler = [s = svc.get()](HttpRequest& r) { return s->Handle(r); };
  if (svc->options_.netns.empty()) {
    PHOTON_ASSIGN_OR_RETURN(svc->http_, HttpServer::Start(http, handler));
    return svc;
  }
  // The listening socket belongs to the namespace of the thread that makes it: a thread of
  // its own enters the node's namespace for that and ends (setns is per thread).
  StatusOr<std::unique_ptr<HttpServer>> started = absl::InternalError("not started");
  std::thread t([&] {
    int fd = ::open(svc->options_.netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      started = absl::InternalError("metadata: cannot enter " + svc->options_.netns + ": " +
                                    std::string(strerror(errno)));
    } else {
      started = HttpServer::Start(http, handler);
    }
    if (fd >= 0) ::close(fd);
  });
  t.join();
  if (!started.ok()) return started.status();
  svc->http_ = std::move(*started);
  return svc;
}

MetadataService::~MetadataService() { Stop(); }

void MetadataService::Stop() {
  if (http_) http_->Stop();
}

int MetadataService::port() const { return http_ ? http_->port() : 0; }

HttpResponse MetadataService::Handle(const HttpRequest& req) {
  const std::string& ip = req.remote_address;
  auto md = directory_->FindByAddress(ip);
  if (!md) return Text(403, "no instance has address " + ip + " on this node\n");
  const std::vector<std::string> path = SplitPath(req.path);
  if (req.method == "PUT" && path == std::vector<std::string>{"latest", "api", "token"})
    return PutToken(req, ip);
  if (req.method != "GET" && req.method != "HEAD") return Text(405, "Method Not Allowed\n");
  if (path.empty()) return Text(200, "latest\nopenstack");
  if (path[0] == "openstack") return OpenStack(path, *md);
  if (path[0] == "latest") {
    const std::string token = req.Header(kTokenHeader);
    if (token.empty() || !TokenValid(token, ip))
      return Text(401, "Unauthorized: PUT /latest/api/token first (IMDSv2 tokens required)\n");
    return Ec2(path, *md);
  }
  return NotFound();
}

HttpResponse MetadataService::PutToken(const HttpRequest& req, const std::string& ip) {
  // As AWS: a request relayed by a proxy (an SSRF through a web app) gets no token.
  if (!req.Header("x-forwarded-for").empty())
    return Text(403, "Forbidden: X-Forwarded-For is not accepted on token requests\n");
  const std::string ttl_s = req.Header(kTtlHeader);
  int ttl = 0;
  try {
    size_t used = 0;
    ttl = std::stoi(ttl_s, &used);
    if (used != ttl_s.size()) ttl = 0;
  } catch (const std::exception&) {
    ttl = 0;
  }
  if (ttl < 1 || ttl > kMaxTtlSeconds) {
    return Text(400, "Bad Request: X-aws-ec2-metadata-token-ttl-seconds must be 1.." +
                         std::to_string(kMaxTtlSeconds) + "\n");
  }
  const auto now = Clock::now();
  std::string token = RandomHex(32);
  {
    std::lock_guard lock(mu_);
    std::erase_if(tokens_, [&](const auto& t) { return t.second.expires <= now; });
    if (static_cast<int>(tokens_.size()) >= options_.max_tokens)
      return Text(503, "Service Unavailable: too many tokens alive\n");
    tokens_[token] = {ip, now + std::chrono::seconds(ttl)};
  }
  HttpResponse r = Text(200, token);
  r.headers.emplace_back("X-aws-ec2-metadata-token-ttl-seconds", std::to_string(ttl));
  return r;
}

bool MetadataService::TokenValid(const std::string& token, const std::string& ip) {
  std::lock_guard lock(mu_);
  auto it = tokens_.find(token);
  if (it == tokens_.end()) return false;
  if (it->second.expires <= Clock::now()) {
    tokens_.erase(it);
    return false;
  }
  return it->second.ip == ip;  // another instance's token is worth nothing here
}

HttpResponse MetadataService::OpenStack(const std::vector<std::string>& path,
                                        const InstanceMetadata& md) {
  if (path.size() == 1) return Text(200, "latest");
  if (path[1] != "latest") return NotFound();
  if (path.size() == 2) {
    return Text(
        200, "meta_data.json\nnetwork_data.json\nuser_data\nvendor_data.json\nvendor_data2.json");
  }
  if (path.size() != 3) return NotFound();
  const std::string& file = path[2];
  if (file == "meta_data.json") {
    json keys = json::array(), public_keys = json::object();
    for (size_t i = 0; i < md.public_keys.size(); ++i) {
      public_keys[Key(i)] = md.public_keys[i];
      keys.push_back({{"name", Key(i)}, {"type", "ssh"}, {"data", md.public_keys[i]}});
    }
    json doc = {{"uuid", md.id},
                {"name", md.name},
                {"hostname", md.hostname},
                {"availability_zone", md.availability_zone},
                {"project_id", md.namespace_},
                {"launch_index", 0},
                {"public_keys", public_keys},
                {"keys", keys},
                {"meta", json::object()}};
    return HttpResponse::Json(200, doc.dump());
  }
  if (file == "network_data.json") {
    // The routed design: the address is a /32, the gateway 169.254.1.1 is reached on-link
    // (a host route to it first, then the default route through it).
    json net = {
        {"id", "network0"},
        {"link", "eth0"},
        {"type", "ipv4"},
        {"ip_address", md.ip},
        {"netmask", "255.255.255.255"},
        {"routes",
         {{{"network", "169.254.1.1"}, {"netmask", "255.255.255.255"}, {"gateway", "0.0.0.0"}},
          {{"network", "0.0.0.0"}, {"netmask", "0.0.0.0"}, {"gateway", "169.254.1.1"}}}}};
    json services = json::array();
    for (const auto& d : md.dns_nameservers) services.push_back({{"type", "dns"}, {"address", d}});
    json doc = {
        {"links",
         {{{"id", "eth0"}, {"type", "phy"}, {"ethernet_mac_address", md.mac}, {"mtu", 1500}}}},
        {"networks", json::array({net})},
        {"services", services}};
    return HttpResponse::Json(200, doc.dump());
  }
  if (file == "user_data") {
    if (md.user_data.empty()) return NotFound();
    HttpResponse r = Text(200, md.user_data);
    r.content_type = "application/octet-stream";
    return r;
  }
  if (file == "vendor_data.json" || file == "vendor_data2.json")
    return HttpResponse::Json(200, "{}");
  return NotFound();
}

HttpResponse MetadataService::Ec2(const std::vector<std::string>& path,
                                  const InstanceMetadata& md) {
  if (path.size() == 1) return Text(200, "dynamic\nmeta-data\nuser-data");
  if (path[1] == "user-data" && path.size() == 2) {
    if (md.user_data.empty()) return NotFound();
    HttpResponse r = Text(200, md.user_data);
    r.content_type = "application/octet-stream";
    return r;
  }
  if (path[1] == "dynamic") {
    if (path.size() == 2) return Text(200, "instance-identity/");
    if (path[2] != "instance-identity") return NotFound();
    if (path.size() == 3) return Text(200, "document");
    if (path.size() != 4 || path[3] != "document") return NotFound();
    json doc = {{"instanceId", md.id},
                {"instanceType", "photon"},
                {"imageId", "photon"},
                {"privateIp", md.ip},
                {"availabilityZone", md.availability_zone},
                {"region", md.availability_zone},
                {"architecture", "x86_64"}};
    return HttpResponse::Json(200, doc.dump());
  }
  if (path[1] != "meta-data") return NotFound();
  const json tree = Ec2Tree(md);
  const json* node = &tree;
  for (size_t i = 2; i < path.size(); ++i) {
    if (!node->is_object() || !node->contains(path[i])) return NotFound();
    node = &(*node)[path[i]];
  }
  if (node->is_string()) return Text(200, node->get<std::string>());
  if (path.size() == 3 && path[2] == "public-keys") {  // EC2 lists keys as "0=key-0"
    std::string out;
    for (size_t i = 0; i < md.public_keys.size(); ++i)
      out += (out.empty() ? "" : "\n") + std::to_string(i) + "=" + Key(i);
    return Text(200, out);
  }
  return Text(200, Listing(*node));
}

}  // namespace photon::agent::metadata
