#!/usr/bin/env python3
"""VPC private DNS end to end (docs/networking.md "Private DNS"): a real flashdns and a real
photon-server binary with the flashdns provider; VPCs, subnets and instances created over
REST; answers checked with real dig. Every process is stopped at the end; every wait is
bounded.

usage: private_dns_test.py BUILD_DIR"""
import os
import sys
import unittest

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "flashdns"))
import harness  # noqa: E402  (flashdns's own test harness: daemons, free ports, dig)
from provider_harness import Http, start_photon_server  # noqa: E402
from provider_harness import wait_until as wait_long  # noqa: E402

SERVER = os.path.join(BUILD, "src/server/photon-server")
FLASHDNS = os.path.join(BUILD, "src/flashdns/flashdns")
NS = "team-a"


def wait_until(what, fn, timeout=5.0):
    return wait_long(what, fn, timeout)


class PrivateDnsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = harness.make_tmp("photon-pdns-")
        os.makedirs(os.path.join(cls.tmp, "flashdns"))
        cls.dns = harness.FlashDns(FLASHDNS, [], workdir=os.path.join(cls.tmp, "flashdns"),
                                   listen=("127.0.0.1",))
        cls.dns.start()
        cls.port = harness.free_port()
        cls.data = os.path.join(cls.tmp, "server")
        cls.config = os.path.join(cls.tmp, "photon-server.yaml")
        with open(cls.config, "w") as f:
            # Resync far off: what the tests see within their 5 s waits comes from watch
            # events, not from the periodic resync (which a restart runs at once).
            f.write("provider_resync_s: 60\n"
                    "providers:\n"
                    "  - driver: flashdns\n"
                    "    endpoint: http://127.0.0.1:%d\n"
                    "    token_file: %s\n"
                    "    timeout_ms: 1000\n" % (cls.dns.api_port,
                                                 os.path.join(cls.dns.data_dir, "api.token")))
        cls.server = start_photon_server(SERVER, cls.config, cls.data, cls.port, cls.tmp)
        with open(os.path.join(cls.data, "admin.token")) as f:
            cls.api = Http("http://127.0.0.1:%d" % cls.port, f.read().strip())
        cls.flash = Http("http://127.0.0.1:%d" % cls.dns.api_port, cls.dns.token())

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.stop()
        cls.dns.stop()

    # --- helpers -------------------------------------------------------------------------

    def create(self, plural, doc, want=202, ns=NS):
        code, body = self.api.call("POST", "/v1/namespaces/%s/%s" % (ns, plural), doc)
        self.assertEqual(code, want, body)
        return body

    def get(self, plural, name, ns=NS):
        code, body = self.api.call("GET", "/v1/namespaces/%s/%s/%s" % (ns, plural, name))
        return body if code == 200 else None

    def network(self, vpc, cidr, dns):
        self.create("vpcs", {"metadata": {"name": vpc},
                             "spec": {"cidrBlock": cidr, "enableDnsHostnames": dns}})
        self.create("subnets", {"metadata": {"name": vpc + "-s"},
                                "spec": {"vpcId": vpc, "cidrBlock": cidr}})

    def instance(self, name, subnet):
        self.create("computeinstances", {
            "kind": "ComputeInstance", "metadata": {"name": name},
            "spec": {"process": {"command": ["/bin/true"]},
                     "resources": {"vcpu": 1, "memoryMb": 64},
                     "network": {"subnet": subnet}}})
        ci = self.get("computeinstances", name)
        return ci["status"]["addresses"][0]

    def delete(self, plural, name):
        code, body = self.api.call("DELETE", "/v1/namespaces/%s/%s/%s" % (NS, plural, name))
        self.assertIn(code, (200, 202), body)

    def a(self, name):
        r = self.dns.dig(name, "A")
        return r["status"], sorted(x[4] for x in r["answer"] if x[3] == "A")

    def dns_ready(self, vpc):
        st = (self.get("vpcs", vpc) or {}).get("status", {})
        for c in st.get("conditions", []):
            if c.get("type") == "DnsReady":
                return c, st.get("details", {}).get("dns.zone")
        return None, st.get("details", {}).get("dns.zone")

    def set_dns(self, vpc, on):
        o = self.get("vpcs", vpc)
        o["spec"]["enableDnsHostnames"] = on
        code, body = self.api.call("PUT", "/v1/namespaces/%s/vpcs/%s" % (NS, vpc), o)
        self.assertEqual(code, 200, body)

    def our_records(self, zone):
        code, body = self.flash.call("GET", "/v1/zones/" + zone)
        self.assertEqual(code, 200, body)
        return [r for r in body["records"] if r.get("owner", "").startswith("photon:vpcs/")]

    # --- tests (run in name order) ---------------------------------------------------------

    def test_1_records_follow_instances(self):
        self.network("v1", "10.61.0.0/24", True)
        web = self.instance("web", "v1-s")
        db = self.instance("db", "v1-s")
        wait_until("web's A record",
                   lambda: self.a("web.v1.team-a.internal") == ("NOERROR", [web]))
        self.assertEqual(self.a("db.v1.team-a.internal"), ("NOERROR", [db]))
        cond, zone = self.dns_ready("v1")
        self.assertEqual(zone, "v1.team-a.internal.")
        self.assertEqual((cond["status"], cond["reason"]), ("True", "Synced"), cond)

        # A VPC without enableDnsHostnames has no zone.
        self.network("v2", "10.62.0.0/24", False)
        self.instance("quiet", "v2-s")
        self.assertEqual(self.a("db.v1.team-a.internal"), ("NOERROR", [db]))
        self.assertEqual(self.dns.dig("v2.team-a.internal", "SOA")["status"], "REFUSED")
        self.assertEqual(self.dns_ready("v2"), (None, None))

        # Deleted instance: its name goes, the others stay.
        self.delete("computeinstances", "web")
        wait_until("web NXDOMAIN",
                   lambda: self.dns.dig("web.v1.team-a.internal", "A")["status"] == "NXDOMAIN")
        self.assertEqual(self.a("db.v1.team-a.internal"), ("NOERROR", [db]))
        # Exactly one record per instance.
        recs = self.our_records("v1.team-a.internal.")
        self.assertEqual([(r["name"], r["data"]) for r in recs],
                         [("db.v1.team-a.internal.", db)], recs)

        # DNS turned off: the zone goes and the condition with it; on again: it is back.
        self.set_dns("v1", False)
        wait_until("zone removed",
                   lambda: self.dns.dig("v1.team-a.internal", "SOA")["status"] == "REFUSED")
        wait_until("condition dropped", lambda: self.dns_ready("v1") == (None, None))
        self.set_dns("v1", True)
        wait_until("db back", lambda: self.a("db.v1.team-a.internal") == ("NOERROR", [db]))

    def test_2_internal_tree_is_reserved(self):
        body = self.create("dnszones", {"kind": "DnsZone", "metadata": {"name": "squat"},
                                        "spec": {"name": "v1.team-a.internal."}}, want=400)
        self.assertIn("spec.name", body["error"]["message"])
        self.assertIn("private DNS", body["error"]["message"])

    def test_3_repairs_and_orphans_after_restart(self):
        self.network("v3", "10.63.0.0/24", True)
        app = self.instance("app", "v3-s")
        wait_until("app", lambda: self.a("app.v3.team-a.internal") == ("NOERROR", [app]))
        self.server.stop()
        self.server = None
        # While photon-server is down: its record is deleted and a wrong one added behind its
        # back, and a zone is left of a VPC that no longer exists.
        for r in self.our_records("v3.team-a.internal."):
            code, body = self.flash.call(
                "DELETE", "/v1/zones/v3.team-a.internal./records/" + r["id"])
            self.assertIn(code, (200, 204), body)
        code, body = self.flash.call("POST", "/v1/zones/v3.team-a.internal./records",
                                     {"name": "stale", "type": "A", "data": "10.63.0.99",
                                      "owner": "photon:vpcs/team-a/v3"})
        self.assertEqual(code, 201, body)
        code, body = self.flash.call("POST", "/v1/zones", {"name": "ghost.team-a.internal.",
                                                           "owner": "photon:vpcs/team-a/ghost"})
        self.assertEqual(code, 201, body)
        type(self).server = start_photon_server(SERVER, self.config, self.data, self.port,
                                                self.tmp)
        wait_until("app restored", lambda: self.a("app.v3.team-a.internal") == ("NOERROR", [app]))
        wait_until("stale removed", lambda: self.dns.dig("stale.v3.team-a.internal",
                                                         "A")["status"] == "NXDOMAIN")
        wait_until("ghost zone removed",
                   lambda: self.flash.call("GET", "/v1/zones/ghost.team-a.internal.")[0] == 404)

    def test_5_a_change_touches_only_its_own_record(self):
        # Incremental: an instance's create or delete writes its own record and nothing else.
        # Seen from flashdns: a record of another instance removed behind photon's back stays
        # removed (a whole-zone sync would put it back) and the others keep their ids, until
        # the resync (60 s here) repairs the zone.
        self.network("v5", "10.65.0.0/24", True)
        a = self.instance("a", "v5-s")
        b = self.instance("b", "v5-s")
        wait_until("a and b", lambda: self.a("a.v5.team-a.internal") == ("NOERROR", [a]) and
                   self.a("b.v5.team-a.internal") == ("NOERROR", [b]))
        zone = "v5.team-a.internal."
        ids = {r["name"]: r["id"] for r in self.our_records(zone)}
        code, body = self.flash.call("DELETE", "/v1/zones/%srecords/%s" % (
            zone + "/", ids["b." + zone]))
        self.assertIn(code, (200, 204), body)
        c = self.instance("c", "v5-s")
        wait_until("c", lambda: self.a("c.v5.team-a.internal") == ("NOERROR", [c]))
        self.delete("computeinstances", "a")
        wait_until("a gone",
                   lambda: self.dns.dig("a.v5.team-a.internal", "A")["status"] == "NXDOMAIN")
        recs = {r["name"]: r for r in self.our_records(zone)}
        self.assertEqual(sorted(recs), ["c." + zone], recs)  # b not put back: untouched
        self.assertEqual(recs["c." + zone]["data"], c)

    def test_4_without_provider_the_vpc_says_so(self):
        plain = os.path.join(self.tmp, "plain.yaml")
        with open(plain, "w") as f:
            f.write("provider_resync_s: 60\n")
        port, data = harness.free_port(), os.path.join(self.tmp, "plain")
        d = start_photon_server(SERVER, plain, data, port, self.tmp)
        try:
            with open(os.path.join(data, "admin.token")) as f:
                api = Http("http://127.0.0.1:%d" % port, f.read().strip())
            code, body = api.call("POST", "/v1/namespaces/default/vpcs",
                                  {"metadata": {"name": "v"},
                                   "spec": {"cidrBlock": "10.64.0.0/24",
                                            "enableDnsHostnames": True}})
            self.assertEqual(code, 202, body)

            def refused():
                st = api.call("GET", "/v1/namespaces/default/vpcs/v")[1].get("status", {})
                return [c for c in st.get("conditions", [])
                        if c.get("type") == "DnsReady" and c.get("status") == "False" and
                        c.get("reason") == "NoProvider"]
            wait_until("NoProvider condition", refused)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
