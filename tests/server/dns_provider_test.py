#!/usr/bin/env python3
"""The flashdns DnsZone/DnsRecord provider end to end: a real flashdns, a real photon-server
binary configured with a `providers:` entry, objects created through the REST API and the
photon CLI, answers checked with real dig. Every process is stopped at the end (and gets
SIGTERM if this test dies); every wait is bounded.

usage: dns_provider_test.py BUILD_DIR"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "flashdns"))
import harness  # noqa: E402  (flashdns's own test harness: daemons, free ports, dig)
from provider_harness import Http, start_photon_server, wait_until  # noqa: E402

SERVER = os.path.join(BUILD, "src/server/photon-server")
FLASHDNS = os.path.join(BUILD, "src/flashdns/flashdns")
PHOTON = os.path.join(BUILD, "src/cli/photon")

STATIC_ZONE = """$ORIGIN static.test.
$TTL 300
@   IN SOA ns1.static.test. hostmaster.static.test. 1 3600 600 86400 300
@   IN NS  ns1.static.test.
ns1 IN A   192.0.2.53
www IN A   192.0.2.80
"""


class DnsProviderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = harness.make_tmp("photon-dns-")
        zone_file = os.path.join(cls.tmp, "static.test.zone")
        with open(zone_file, "w") as f:
            f.write(STATIC_ZONE)
        os.makedirs(os.path.join(cls.tmp, "flashdns"))
        cls.dns = harness.FlashDns(FLASHDNS, [{"name": "static.test.", "file": zone_file}],
                                   workdir=os.path.join(cls.tmp, "flashdns"),
                                   listen=("127.0.0.1",))
        cls.dns.start(wait_name="static.test")
        cls.port = harness.free_port()
        cls.data = os.path.join(cls.tmp, "server")
        cls.config = os.path.join(cls.tmp, "photon-server.yaml")
        with open(cls.config, "w") as f:
            f.write("provider_resync_s: 2\n"
                    "providers:\n"
                    "  - driver: flashdns\n"
                    "    endpoint: http://127.0.0.1:%d\n"
                    "    token_file: %s\n"
                    "    timeout_ms: 1000\n" % (cls.dns.api_port,
                                                 os.path.join(cls.dns.data_dir, "api.token")))
        cls.server = None
        cls.start_server()
        with open(os.path.join(cls.data, "admin.token")) as f:
            cls.api = Http("http://127.0.0.1:%d" % cls.port, f.read().strip())
        cls.flash = Http("http://127.0.0.1:%d" % cls.dns.api_port, cls.dns.token())

    @classmethod
    def start_server(cls, config=None, port=None, data=None):
        port = port or cls.port
        d = start_photon_server(SERVER, config or cls.config, data or cls.data, port, cls.tmp)
        if port == cls.port:
            cls.server = d
        return d

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.stop()
        cls.dns.stop()

    # --- helpers -------------------------------------------------------------------------

    def create(self, ns, plural, doc, want=202):
        code, body = self.api.call("POST", "/v1/namespaces/%s/%s" % (ns, plural), doc)
        self.assertEqual(code, want, body)
        return body

    def get(self, ns, plural, name):
        code, body = self.api.call("GET", "/v1/namespaces/%s/%s/%s" % (ns, plural, name))
        return body if code == 200 else None

    def wait_phase(self, ns, plural, name, phase, contains="", timeout=15.0):
        def check():
            o = self.get(ns, plural, name)
            if not o:
                return None
            st = o.get("status", {})
            ok = (st.get("phase") == phase and contains in st.get("message", "") and
                  st.get("observedGeneration") == o["metadata"].get("generation"))
            return o if ok else None
        return wait_until("%s/%s/%s %s %r" % (plural, ns, name, phase, contains), check, timeout)

    def answers(self, name, qtype="A"):
        r = self.dns.dig(name, qtype)
        return r["status"], sorted(a[4] for a in r["answer"] if a[3] == qtype)

    def zone(self, name, ns="team-a", dns_name=None):
        return {"kind": "DnsZone", "metadata": {"name": name, "namespace": ns},
                "spec": {"name": dns_name or name.replace("-", ".") + "."}}

    def record(self, name, zone, rname, rtype, values, ttl=60, ns="team-a"):
        return {"kind": "DnsRecord", "metadata": {"name": name, "namespace": ns},
                "spec": {"zone": zone, "name": rname, "type": rtype, "ttl": ttl,
                         "values": values}}

    def photon(self, *args, stdin=None):
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.tmp,
               "PHOTON_SERVER": self.api.base, "PHOTON_TOKEN": self.api.token}
        return subprocess.run([PHOTON, *args], env=env, input=stdin, capture_output=True,
                              text=True, timeout=30, cwd=ROOT)

    # --- tests (unittest runs them in name order; each uses its own zone) ----------------

    def test_1_zone_records_update_delete(self):
        self.create("team-a", "dnszones", self.zone("web", dns_name="web.test."))
        z = self.wait_phase("team-a", "dnszones", "web", "RUNNING")
        self.assertEqual(z["status"]["details"]["zone"], "web.test.")
        self.assertEqual(self.dns.dig("web.test", "SOA")["status"], "NOERROR")

        self.create("team-a", "dnsrecords",
                    self.record("www", "web", "www", "A", ["192.0.2.1", "192.0.2.2"]))
        self.wait_phase("team-a", "dnsrecords", "www", "RUNNING")
        self.assertEqual(self.answers("www.web.test"), ("NOERROR", ["192.0.2.1", "192.0.2.2"]))

        # Once through the CLI, as the README shows: an absolute name, a CNAME.
        doc = ("kind: DnsRecord\nmetadata:\n  name: api\nspec:\n  zone: web\n"
               "  name: api.web.test.\n  type: CNAME\n  values: [www.web.test.]\n")
        r = self.photon("create", "-n", "team-a", "-f", "-", stdin=doc)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.wait_phase("team-a", "dnsrecords", "api", "RUNNING")
        self.assertEqual(self.answers("api.web.test", "CNAME"), ("NOERROR", ["www.web.test."]))

        # Update: the values are replaced, not added to.
        o = self.get("team-a", "dnsrecords", "www")
        o["spec"]["values"] = ["192.0.2.3"]
        code, body = self.api.call("PUT", "/v1/namespaces/team-a/dnsrecords/www", o)
        self.assertEqual(code, 200, body)
        self.wait_phase("team-a", "dnsrecords", "www", "RUNNING", "192.0.2.3")
        wait_until("new answer", lambda: self.answers("www.web.test") ==
                   ("NOERROR", ["192.0.2.3"]))
        # Repeated applies (resync every 2 s) leave exactly one flashdns record per value.
        time.sleep(2.5)
        code, zone = self.flash.call("GET", "/v1/zones/web.test.")
        self.assertEqual(code, 200, zone)
        mine = [r for r in zone["records"] if r.get("owner") == "photon:dnsrecords/team-a/www"]
        self.assertEqual([r["data"] for r in mine], ["192.0.2.3"], zone)
        self.assertEqual(zone.get("owner"), "photon:dnszones/team-a/web")

        # Delete the record: NXDOMAIN. Delete the zone: REFUSED.
        code, body = self.api.call("DELETE", "/v1/namespaces/team-a/dnsrecords/www")
        self.assertEqual(code, 202, body)
        wait_until("NXDOMAIN", lambda: self.dns.dig("www.web.test", "A")["status"] == "NXDOMAIN")
        code, body = self.api.call("DELETE", "/v1/namespaces/team-a/dnszones/web")
        self.assertEqual(code, 202, body)
        wait_until("REFUSED", lambda: self.dns.dig("www.web.test", "A")["status"] == "REFUSED")
        # The record left behind waits for its zone and says so.
        self.wait_phase("team-a", "dnsrecords", "api", "PENDING", "waiting for DnsZone 'web'")

    def test_2_bad_records_are_400_naming_the_field(self):
        cases = [
            (self.record("bad1", "z", "www", "A", ["hello"]), "spec.values[0]"),
            (self.record("bad2", "z", "www", "AAAA", ["192.0.2.1"]), "spec.values[0]"),
            (self.record("bad3", "z", "www", "BOGUS", ["x"]), "spec.type"),
            (self.record("bad4", "z", "www", "A", []), "spec.values"),
            (self.record("bad5", "", "www", "A", ["192.0.2.1"]), "spec.zone"),
            (self.record("bad6", "z", "a..b", "A", ["192.0.2.1"]), "spec.name"),
            (self.record("bad7", "z", "www", "CNAME", ["a.", "b."]), "spec.values"),
            (self.zone("bad8", dns_name="bad zone."), "spec.name"),
        ]
        for doc, field in cases:
            plural = "dnszones" if doc["kind"] == "DnsZone" else "dnsrecords"
            body = self.create("team-a", plural, doc, want=400)
            self.assertIn(field, body["error"]["message"], doc)

    def test_3_zone_conflicts(self):
        self.create("team-a", "dnszones", self.zone("shop", dns_name="shop.test."))
        self.wait_phase("team-a", "dnszones", "shop", "RUNNING")
        # Zone names are global: another namespace gets ERROR naming the owner.
        self.create("team-b", "dnszones", self.zone("shop", ns="team-b", dns_name="shop.test."))
        o = self.wait_phase("team-b", "dnszones", "shop", "ERROR", "team-a")
        self.assertIn("DnsZone 'shop'", o["status"]["message"])
        # A zone served from a zone file is not photon's either.
        self.create("team-a", "dnszones", self.zone("static", dns_name="static.test."))
        self.wait_phase("team-a", "dnszones", "static", "ERROR", "zone file")
        # Deleting the refused objects leaves the zones they could not have alone.
        for ns, name in (("team-b", "shop"), ("team-a", "static")):
            code, body = self.api.call("DELETE", "/v1/namespaces/%s/dnszones/%s" % (ns, name))
            self.assertEqual(code, 202, body)
        time.sleep(1)
        self.assertEqual(self.dns.dig("shop.test", "SOA")["status"], "NOERROR")
        self.assertEqual(self.answers("www.static.test"), ("NOERROR", ["192.0.2.80"]))
        # A flashdns record the backend refuses (an MX without a preference) is an ERROR.
        self.create("team-a", "dnsrecords", self.record("mail", "shop", "@", "MX", ["mx.shop.test."]))
        o = self.wait_phase("team-a", "dnsrecords", "mail", "ERROR", "spec.values[0]")
        self.assertIn("refused by flashdns", o["status"]["message"])

    def test_4_flashdns_down_then_back(self):
        self.dns.stop()
        try:
            self.create("team-a", "dnszones", self.zone("late", dns_name="late.test."))
            o = self.wait_phase("team-a", "dnszones", "late", "CREATING", "unreachable")
            self.assertIn("retrying", o["status"]["message"])
        finally:
            self.dns.start(wait_name="static.test")
        self.wait_phase("team-a", "dnszones", "late", "RUNNING", timeout=30)
        self.assertEqual(self.dns.dig("late.test", "SOA")["status"], "NOERROR")

    def test_5_orphans_removed_after_restart(self):
        self.create("team-a", "dnszones", self.zone("keep", dns_name="keep.test."))
        self.wait_phase("team-a", "dnszones", "keep", "RUNNING")
        self.create("team-a", "dnszones", self.zone("gone", dns_name="gone.test."))
        self.create("team-a", "dnsrecords", self.record("host", "gone", "host", "A", ["192.0.2.9"]))
        self.wait_phase("team-a", "dnsrecords", "host", "RUNNING")
        self.server.stop()
        # While photon-server is down: its objects are deleted from the store (a server killed
        # between the delete and the backend call), and another API user makes a zone.
        code, body = self.flash.call("POST", "/v1/zones",
                                     {"name": "ghost.test.", "owner": "photon:dnszones/team-a/ghost"})
        self.assertEqual(code, 201, body)
        code, body = self.flash.call("POST", "/v1/zones", {"name": "other.test."})
        self.assertEqual(code, 201, body)
        code, body = self.flash.call("POST", "/v1/zones/keep.test./records",
                                     {"name": "stray", "type": "A", "data": "192.0.2.7",
                                      "owner": "photon:dnsrecords/team-a/stray"})
        self.assertEqual(code, 201, body)
        self.start_server()
        wait_until("ghost.test. removed",
                   lambda: self.flash.call("GET", "/v1/zones/ghost.test.")[0] == 404)
        wait_until("stray record removed",
                   lambda: self.dns.dig("stray.keep.test", "A")["status"] == "NXDOMAIN")
        self.assertEqual(self.flash.call("GET", "/v1/zones/other.test.")[0], 200)
        self.assertEqual(self.answers("www.static.test"), ("NOERROR", ["192.0.2.80"]))
        self.assertEqual(self.answers("host.gone.test"), ("NOERROR", ["192.0.2.9"]))
        self.assertEqual(self.dns.dig("keep.test", "SOA")["status"], "NOERROR")

    def test_6_metrics_and_no_provider(self):
        with urllib.request.urlopen(self.api.base + "/metrics", timeout=5) as r:
            text = r.read().decode()
        self.assertIn('photon_provider_reconciles_total{kind="dnszones",result="applied"}', text)
        self.assertIn("photon_provider_orphans_removed_total", text)
        # A server without providers says why nothing happens.
        plain = os.path.join(self.tmp, "plain.yaml")
        with open(plain, "w") as f:
            f.write("provider_resync_s: 60\n")
        port, data = harness.free_port(), os.path.join(self.tmp, "plain")
        d = self.start_server(config=plain, port=port, data=data)
        try:
            with open(os.path.join(data, "admin.token")) as f:
                api = Http("http://127.0.0.1:%d" % port, f.read().strip())
            code, body = api.call("POST", "/v1/namespaces/default/dnszones",
                                  self.zone("x", ns="default", dns_name="x.test."))
            self.assertEqual(code, 202, body)

            def pending():
                o = api.call("GET", "/v1/namespaces/default/dnszones/x")[1]
                return o.get("status", {}).get("message") == "no provider configured for dnszones"
            wait_until("no-provider message", pending)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
