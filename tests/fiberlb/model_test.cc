// Unit tests of fiberlb's configuration parsing, validation and HAProxy rendering.
#include "fiberlb/model.h"

#include <gtest/gtest.h>

#include "fiberlb/config.h"
#include "fiberlb/haproxy_config.h"

namespace photon::fiberlb {
namespace {

using nlohmann::json;

std::string ErrorOf(const Status& s) { return std::string(s.message()); }

TEST(YamlToJson, PlainScalarsTypedQuotedOnesStrings) {
  auto j = YamlToJson("a: 12\nb: '12'\nc: true\nd: \"true\"\ne: 127.0.0.1:80\nf: -3\n");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)["a"], 12);
  EXPECT_EQ((*j)["b"], "12");
  EXPECT_EQ((*j)["c"], true);
  EXPECT_EQ((*j)["d"], "true");
  EXPECT_EQ((*j)["e"], "127.0.0.1:80");
  EXPECT_EQ((*j)["f"], -3);
}

TEST(ParseConfig, UnknownKeysAndBgpAreRefusedByName) {
  EXPECT_EQ(ErrorOf(ParseConfig("bogus: 1\n").status()), "bogus: unknown field");
  // bgp alone serves announced L7 listeners (l7_vips.h).
  auto bgp = ParseConfig("bgp: {route_protocol: 201}\n");
  ASSERT_TRUE(bgp.ok()) << bgp.status();
  EXPECT_EQ(bgp->bgp_route_protocol, 201);
  EXPECT_FALSE(bgp->l4.has_value());
  EXPECT_EQ(ParseConfig("bgp: {}\n")->bgp_route_protocol, 200);
  EXPECT_EQ(ParseConfig("api: ''\n")->bgp_route_protocol, 0);
  EXPECT_EQ(ErrorOf(ParseConfig("l4: {device: eth0}\nbgp: {asn: 65000}\n").status()),
            "bgp.asn: unknown field");
  EXPECT_EQ(ErrorOf(ParseConfig("bgp: {route_protocol: 300}\n").status()),
            "bgp.route_protocol: an integer from 1 to 254");
  auto member = ParseConfig("pools: [{name: p, members: [{address: '127.0.0.1:1', wieght: 2}]}]");
  EXPECT_EQ(ErrorOf(member.status()), "pools[0].members[0].wieght: unknown field");
  auto ok = ParseConfig(
      "api: 127.0.0.1:9000\nlisteners: [{name: w, protocol: http, address: '0.0.0.0:80', "
      "pool: p}]\npools: [{name: p, members: [{address: '10.0.0.1:80', weight: 3}]}]\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->state.pools.at("p").members[0].name, "10_0_0_1_80");
  EXPECT_EQ(ok->state.pools.at("p").members[0].weight, 3);
}

TEST(ParseConfig, L4SectionListenersAndTheirRefusals) {
  auto ok = ParseConfig(
      "l4:\n  device: ul0\n  hash_seed: 7\n  listeners:\n"
      "    - {name: dns, vip: 10.9.0.1, port: 53, protocol: udp,\n"
      "       health_check: {type: tcp, port: 53}, members: [{address: 10.0.0.5, weight: 2}]}\n"
      "bgp: {route_protocol: 201}\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_TRUE(ok->l4.has_value());
  EXPECT_EQ(ok->l4->device, "ul0");
  EXPECT_EQ(ok->l4->hash_seed, 7u);
  EXPECT_EQ(ok->l4->route_protocol, 201);
  ASSERT_EQ(ok->l4->listeners.size(), 1u);
  EXPECT_EQ(ok->l4->listeners[0].members[0].weight, 2);
  auto bad = [](const std::string& listener) {
    return ErrorOf(ParseConfig("l4: {device: ul0, listeners: [" + listener + "]}\n").status());
  };
  EXPECT_EQ(bad("{name: a, vip: 10.9.0.1, port: 80, members: [{address: '10.0.0.5:80'}]}"),
            "l4.listeners[0].members[0].address: '10.0.0.5:80' is not an IPv4 address (no port: "
            "with DSR the member serves the listener's port)");
  EXPECT_EQ(bad("{name: a, vip: 10.9.0.1, port: 80, members: [{address: 10.0.0.5, forward: x}]}"),
            "l4.listeners[0].members[0].forward: 'x' is not auto, l2 or l3");
  auto l2 = ParseConfig(
      "l4: {device: ul0, listeners: [{name: a, vip: 10.9.0.1, port: 80, members: [{address: "
      "10.0.0.5, forward: l2}, {address: 10.0.0.6}]}]}\n");
  ASSERT_TRUE(l2.ok()) << l2.status();
  EXPECT_EQ(l2->l4->listeners[0].members[0].forward, "l2");
  EXPECT_EQ(l2->l4->listeners[0].members[1].forward, "auto");
  EXPECT_EQ(
      bad("{name: a, vip: 10.9.0.1, port: 80, protocol: http}"),
      "l4.listeners[0].protocol: must be tcp or udp (http and https are HAProxy's listeners)");
  EXPECT_EQ(bad("{name: a, vip: 10.9.0.1, port: 53, protocol: udp, health_check: {type: tcp}}"),
            "l4.listeners[0].health_check.port: a tcp check of a udp listener needs a port");
  EXPECT_EQ(bad("{name: a, vip: 10.9.0.1, port: 80, health_check: {type: http}}"),
            "l4.listeners[0].health_check.type: http checks are HAProxy's; L4 listeners take tcp "
            "or none");
  EXPECT_EQ(bad("{name: a, vip: 10.9.0.1, port: 80, sticky: true}"),
            "l4.listeners[0].sticky: unknown field");
  EXPECT_EQ(bad("{name: a, vip: 10.9.0.1, port: 80}, {name: a, vip: 10.9.0.2, port: 80}"),
            "l4.listeners[1].name: 'a' listed twice");
  auto overlap = ParseConfig(
      "listeners: [{name: w, protocol: tcp, address: '0.0.0.0:80', pool: p}]\n"
      "pools: [{name: p}]\nl4: {device: ul0, listeners: [{name: a, vip: 10.9.0.1, port: 80}]}\n");
  EXPECT_EQ(ErrorOf(overlap.status()),
            "l4.listeners[0].port: 10.9.0.1:80 overlaps the L7 listener on 0.0.0.0:80");
}

TEST(Listener, L7OptionsOnTcpAndOtherMisfitsAreRefused) {
  json base = {{"name", "t"}, {"protocol", "tcp"}, {"address", "127.0.0.1:1"}, {"pool", "p"}};
  for (const char* key : {"routes", "certificates", "http2", "forwarded_for", "rate_limit"}) {
    json j = base;
    j[key] = json::array();
    EXPECT_EQ(ErrorOf(ListenerFromJson(j, "listeners.t").status()),
              std::string("listeners.t.") + key + ": L7 option on a tcp listener");
  }
  // announce: the address must name the VIP (an IPv4 address), never a wildcard.
  json announce = base;
  announce["announce"] = true;
  EXPECT_TRUE(ListenerFromJson(announce, "l").ok());
  EXPECT_EQ(AnnouncedVip(*ListenerFromJson(announce, "l")), "127.0.0.1");
  announce["address"] = "0.0.0.0:80";
  EXPECT_EQ(ErrorOf(ListenerFromJson(announce, "l").status()),
            "l.announce: needs an IPv4 address (the VIP) in address, not '0.0.0.0:80'");
  announce["address"] = "[::1]:80";
  EXPECT_NE(ErrorOf(ListenerFromJson(announce, "l").status()).find("l.announce"),
            std::string::npos);
  announce["announce"] = "yes";
  EXPECT_NE(ErrorOf(ListenerFromJson(announce, "l").status()).find("l.announce"),
            std::string::npos);
  json udp = base;
  udp["protocol"] = "udp";
  EXPECT_NE(ErrorOf(ListenerFromJson(udp, "l").status()).find("l.protocol"), std::string::npos);
  json h2 = base;
  h2["protocol"] = "http";
  h2["http2"] = true;
  EXPECT_NE(ErrorOf(ListenerFromJson(h2, "l").status()).find("l.http2"), std::string::npos);
  json https = base;
  https["protocol"] = "https";
  EXPECT_NE(ErrorOf(ListenerFromJson(https, "l").status()).find("l.certificates"),
            std::string::npos);
}

TEST(Validate, OverlapsWildcardsApiAndPoolModes) {
  State s;
  s.pools["p"] = Pool{.name = "p"};
  s.listeners["a"] =
      Listener{.name = "a", .protocol = "http", .address = "127.0.0.1:80", .pool = "p"};
  EXPECT_TRUE(Validate(s, "127.0.0.1:81").ok());
  EXPECT_NE(ErrorOf(Validate(s, "127.0.0.1:80")).find("listeners.a.address"), std::string::npos);
  s.listeners["b"] =
      Listener{.name = "b", .protocol = "http", .address = "0.0.0.0:80", .pool = "p"};
  EXPECT_NE(ErrorOf(Validate(s, "")).find("overlaps"), std::string::npos);
  s.listeners["b"].address = "127.0.0.2:80";
  EXPECT_TRUE(Validate(s, "").ok());
  s.listeners["b"].protocol = "tcp";
  EXPECT_NE(ErrorOf(Validate(s, "")).find("both tcp and http"), std::string::npos);
  s.listeners["b"].pool = "missing";
  EXPECT_NE(ErrorOf(Validate(s, "")).find("no pool 'missing'"), std::string::npos);
}

TEST(RenderConfig, FrontendsBackendsAndServerOptions) {
  State s;
  Pool p{.name = "web", .algorithm = "leastconn"};
  p.members.push_back(Member{.name = "m1", .address = "10.0.0.1:80", .weight = 2});
  p.health_check = HealthCheck{
      .type = "http", .path = "/h", .expect_status = 204, .interval_ms = 200, .rise = 1, .fall = 2};
  p.proxy_protocol = "v2";
  p.sticky = true;
  s.pools["web"] = p;
  Listener l{.name = "front", .protocol = "http", .address = "127.0.0.1:80", .pool = "web"};
  l.routes.push_back(Route{.host = "a.example", .path_prefix = "/api", .pool = "web"});
  l.rate_limit = RateLimit{.requests = 5, .period_s = 7};
  s.listeners["front"] = l;
  RenderPaths paths{.run_dir = "/run/x"};
  std::map<std::string, std::vector<Member>> draining = {
      {"web", {Member{.name = "old", .address = "10.0.0.9:80", .weight = 4}}}};
  std::string cfg = RenderConfig(s, paths, draining);
  EXPECT_NE(cfg.find("stats socket /run/x/admin.sock mode 600 level admin expose-fd listeners"),
            std::string::npos);
  EXPECT_NE(cfg.find("option idle-close-on-response"), std::string::npos);
  EXPECT_NE(cfg.find("frontend l_front\n  bind 127.0.0.1:80\n  mode http"), std::string::npos);
  EXPECT_NE(cfg.find("use_backend p_web if { req.hdr(host),field(1,:),lower -m str a.example } "
                     "{ path_beg /api }"),
            std::string::npos);
  EXPECT_NE(cfg.find("deny deny_status 429 if { sc_http_req_rate(0) gt 5 }"), std::string::npos);
  EXPECT_NE(cfg.find("balance leastconn"), std::string::npos);
  EXPECT_NE(cfg.find("option httpchk GET /h\n  http-check expect status 204"), std::string::npos);
  EXPECT_NE(cfg.find("server m1 10.0.0.1:80 weight 2 check inter 200 rise 1 fall 2 send-proxy-v2 "
                     "check-send-proxy cookie m1"),
            std::string::npos);
  // A draining member stays, taking no new traffic, until deleted at run time.
  EXPECT_NE(cfg.find("server old 10.0.0.9:80 weight 0 "), std::string::npos);
}

TEST(RenderConfig, HttpsListenerUsesCrtListWithSni) {
  Listener l{.name = "tls", .protocol = "https", .address = "0.0.0.0:443", .pool = "p"};
  l.certificates.push_back(Certificate{.cert_pem = "c", .key_pem = "k"});
  l.certificates.push_back(Certificate{.cert_pem = "c", .key_pem = "k", .sni = {"b.test"}});
  RenderPaths paths{.run_dir = "/r"};
  EXPECT_EQ(CrtList(paths, l), "/r/certs/tls-0.pem\n/r/certs/tls-1.pem b.test\n");
  State s;
  s.pools["p"] = Pool{.name = "p"};
  s.listeners["tls"] = l;
  EXPECT_NE(RenderConfig(s, paths, {})
                .find("bind 0.0.0.0:443 ssl crt-list /r/certs/tls.crt-list alpn h2,http/1.1"),
            std::string::npos);
}

}  // namespace
}  // namespace photon::fiberlb
