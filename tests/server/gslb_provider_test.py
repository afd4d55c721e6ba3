#!/usr/bin/env python3
"""GlobalService (GSLB) end to end: a real photon-server with the flashdns and gslb providers,
two real flashdns (one serves the zone and checks, the other only checks), two "regions"
(TCP listeners on 127.0.0.2 and 127.0.0.3 that this test starts and stops), real dig.

- A region whose listener stops leaves the answer within the window (fall x interval plus
  the provider's round), and comes back when it listens again.
- One checker that sees a region fail while the others do not removes nothing: an nft rule
  rejects only the second flashdns's connections (it runs as uid nobody), so its vote is
  "down" and the others' "up". A stopped checker removes nothing either, and a real failure
  is still caught by the two that remain.
- Bad specs are 400 naming the field; deleting the GlobalService removes its records.

The test runs in a network namespace of its own (unshare -n, re-executed at start), so its
nft table and loopback addresses touch nothing of the host's. Every wait is bounded.

usage: gslb_provider_test.py BUILD_DIR"""
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import unittest

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("setpriv"):
    sys.exit("gslb_provider_test needs root, nft and setpriv (a private network namespace, and "
             "an nft rule that only one checker meets)")
if os.environ.get("PHOTON_GSLB_NETNS") != "1":
    # A private network namespace: only its own lo, its own nftables.
    env = dict(os.environ, PHOTON_GSLB_NETNS="1")
    os.execvpe("unshare", ["unshare", "-n", "--", sys.executable, os.path.abspath(__file__),
                           os.path.abspath(BUILD)] + sys.argv[1:], env)

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

sys.path.insert(0, os.path.join(ROOT, "tests", "flashdns"))
import harness  # noqa: E402
from provider_harness import Http, start_photon_server, wait_until  # noqa: E402

SERVER = os.path.join(BUILD, "src/server/photon-server")
FLASHDNS = os.path.join(BUILD, "src/flashdns/flashdns")
PHOTON = os.path.join(BUILD, "src/cli/photon")
VIPS = ("127.0.0.2", "127.0.0.3")
NAME = "web.gslb.test"
INTERVAL_MS, FALL, RISE, TTL = 200, 2, 2, 2
# How long a failed region may stay in the answer: fall x interval, plus one round of every
# checker (a timeout at most) and the provider's queue; the answers' TTL comes on top in a
# resolver's cache (dig asks flashdns directly, so no cache here).
WINDOW = FALL * INTERVAL_MS / 1000 + 3.0



class GslbProviderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = harness.make_tmp("photon-gslb-")
        os.makedirs(os.path.join(cls.tmp, "dns-a"))
        cls.dns = harness.FlashDns(FLASHDNS, [], workdir=os.path.join(cls.tmp, "dns-a"),
                                   listen=("127.0.0.1",))
        cls.dns.start(wait_name="nothing.test")
        # The second checker runs as nobody, so an nft rule can reject its connections only.
        cls.nobody = pwd.getpwnam("nobody").pw_uid
        cls.nobody_gid = pwd.getpwnam("nobody").pw_gid
        cls.checker = cls.start_checker()
        cls.port = harness.free_port()
        cls.regions = {vip: harness.TcpRegion(vip, cls.port) for vip in VIPS}
        cls.api_port = harness.free_port()
        cls.data = os.path.join(cls.tmp, "server")
        cls.config = os.path.join(cls.tmp, "photon-server.yaml")
        token_a = os.path.join(cls.dns.data_dir, "api.token")
        with open(cls.config, "w") as f:
            f.write("provider_resync_s: 2\n"
                    "providers:\n"
                    "  - driver: flashdns\n"
                    "    endpoint: http://127.0.0.1:%d\n"
                    "    token_file: %s\n"
                    "  - driver: gslb\n"
                    "    endpoint: http://127.0.0.1:%d\n"
                    "    token_file: %s\n"
                    "    checkers: self, flashdns, http://127.0.0.1:%d=%s\n"
                    "    quorum: 2\n"
                    "    timeout_ms: 1000\n" % (cls.dns.api_port, token_a, cls.dns.api_port,
                                                 token_a, cls.checker.api_port,
                                                 cls.checker_token))
        cls.server = start_photon_server(SERVER, cls.config, cls.data, cls.api_port, cls.tmp)
        with open(os.path.join(cls.data, "admin.token")) as f:
            cls.api = Http("http://127.0.0.1:%d" % cls.api_port, f.read().strip())
        cls.flash = Http("http://127.0.0.1:%d" % cls.dns.api_port, cls.dns.token())
        code, body = cls.api.call("POST", "/v1/namespaces/team-a/dnszones", {
            "kind": "DnsZone", "metadata": {"name": "gslb-test", "namespace": "team-a"},
            "spec": {"name": "gslb.test."}})
        assert code == 202, body

    @classmethod
    def start_checker(cls):
        work = harness.make_tmp("photon-gslb-checker-")  # its own dir: nobody owns it
        d = harness.FlashDns(FLASHDNS, [], workdir=work, listen=("127.0.0.1",))
        os.makedirs(d.data_dir, exist_ok=True)
        for path in (work, d.data_dir, d.config):
            os.chown(path, cls.nobody, -1)
        argv = ["setpriv", "--reuid", str(cls.nobody), "--regid", str(cls.nobody_gid),
                "--clear-groups", FLASHDNS, "--config", d.config]
        d.daemon = harness.Daemon(argv, os.path.join(cls.tmp, "flashdns-b.log"))
        harness.wait_for_dns(d.port, "nothing.test")
        wait_until("second flashdns's token",
                   lambda: os.path.exists(os.path.join(d.data_dir, "api.token")))
        cls.checker_token = os.path.join(d.data_dir, "api.token")
        return d

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["nft", "delete", "table", "inet", "gslbtest"], capture_output=True)
        for r in cls.regions.values():
            r.stop()
        cls.server.stop()
        cls.checker.stop()
        cls.dns.stop()

    # --- helpers -------------------------------------------------------------------------

    def answers(self):
        r = self.dns.dig(NAME, "A")
        return sorted(a[4] for a in r["answer"] if a[3] == "A"), r

    def wait_answers(self, want, timeout):
        start = time.time()
        wait_until("dig %s = %s" % (NAME, want),
                   lambda: self.answers()[0] == sorted(want), timeout)
        return time.time() - start

    def gs(self, name="web", **spec):
        s = {"zone": "gslb-test", "name": "web", "ttl": TTL,
             "members": [{"address": VIPS[0], "region": "r1"},
                         {"address": VIPS[1], "region": "r2"}],
             "healthCheck": {"port": self.port, "intervalMs": INTERVAL_MS, "timeoutMs": 150,
                             "fall": FALL, "rise": RISE}}
        s.update(spec)
        return {"kind": "GlobalService", "metadata": {"name": name, "namespace": "team-a"},
                "spec": s}

    def status(self, name="web"):
        code, body = self.api.call("GET", "/v1/namespaces/team-a/globalservices/" + name)
        return body.get("status", {}) if code == 200 else None

    def ensure_gs(self):
        code, body = self.api.call("GET", "/v1/namespaces/team-a/globalservices/web")
        if code != 200:
            code, body = self.api.call("POST", "/v1/namespaces/team-a/globalservices", self.gs())
            self.assertEqual(code, 202, body)
        self.wait_answers(VIPS, 15)
        # The records are written before the status that says so: the answer may come first.
        wait_until("web RUNNING", lambda: (self.status() or {}).get("phase") == "RUNNING", 10)

    def photon(self, *args):
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.tmp,
               "PHOTON_SERVER": self.api.base, "PHOTON_TOKEN": self.api.token}
        return subprocess.run([PHOTON, *args], env=env, capture_output=True, text=True,
                              timeout=30, cwd=ROOT)

    def reject_second_checker(self, vip):
        script = ("add table inet gslbtest\n"
                  "add chain inet gslbtest out { type filter hook output priority 0; }\n"
                  "add rule inet gslbtest out meta skuid %d ip daddr %s tcp dport %d "
                  "reject with tcp reset\n" % (self.nobody, vip, self.port))
        subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)

    # --- tests ---------------------------------------------------------------------------

    def test_1_failover_and_recovery(self):
        self.ensure_gs()
        names, r = self.answers()
        self.assertTrue(all(a[1] == TTL for a in r["answer"]), r["raw"])
        st = self.status()
        self.assertEqual(st["phase"], "RUNNING", st)
        self.assertIn("2 of 2 members up", st["message"])
        self.assertIn("region r2 up", st["details"]["member.127.0.0.3"])

        self.regions[VIPS[1]].stop()
        took = self.wait_answers([VIPS[0]], WINDOW)
        print("GSLB failover: %s left the answer %.2f s after its listener stopped "
              "(interval %d ms, fall %d, window %.1f s; TTL %d s comes on top)" %
              (VIPS[1], took, INTERVAL_MS, FALL, WINDOW, TTL), file=sys.stderr)
        wait_until("status shows r2 down", lambda: "down" in self.status()["details"].get(
            "member.127.0.0.3", "").split(" [")[0], 10)
        self.assertIn("1 of 2 members up", self.status()["message"])

        self.regions[VIPS[1]].start()
        took = self.wait_answers(VIPS, WINDOW)
        print("GSLB recovery: %s back in the answer after %.2f s" % (VIPS[1], took),
              file=sys.stderr)

    def test_2_one_checker_removes_nothing(self):
        self.ensure_gs()
        # The second flashdns alone sees region 2 refuse: it votes down, the others up.
        self.reject_second_checker(VIPS[1])
        try:
            wait_until("the second checker calls 127.0.0.3 down", lambda: (
                "127.0.0.1:%d: down" % self.checker.api_port) in self.status()["details"].get(
                    "member.127.0.0.3", ""), 10)
            # Several more rounds: the answer keeps both.
            end = time.time() + 10 * INTERVAL_MS / 1000
            while time.time() < end:
                self.assertEqual(self.answers()[0], sorted(VIPS))
                time.sleep(0.1)
            self.assertIn("2 of 2 members up", self.status()["message"])
            # A real failure: all three checkers agree.
            self.regions[VIPS[1]].stop()
            self.wait_answers([VIPS[0]], WINDOW)
            self.regions[VIPS[1]].start()
            self.wait_answers(VIPS, WINDOW)
        finally:
            subprocess.run(["nft", "delete", "table", "inet", "gslbtest"], check=True)
            if self.regions[VIPS[1]].stopped:
                self.regions[VIPS[1]].start()

    def test_3_stopped_checker_removes_nothing_and_two_still_decide(self):
        self.ensure_gs()
        self.checker.daemon.signal(signal.SIGSTOP)
        try:
            wait_until("the stopped checker has no answer", lambda: "no answer" in
                       self.status()["details"].get("member.127.0.0.2", ""), 15)
            self.assertEqual(self.answers()[0], sorted(VIPS))
            self.regions[VIPS[0]].stop()
            self.wait_answers([VIPS[1]], WINDOW + 2)  # each round waits out the stopped one
            self.regions[VIPS[0]].start()
            self.wait_answers(VIPS, WINDOW + 2)
        finally:
            self.checker.daemon.signal(signal.SIGCONT)
            if self.regions[VIPS[0]].stopped:
                self.regions[VIPS[0]].start()

    def test_4_all_down_serves_all(self):
        self.ensure_gs()
        for r in self.regions.values():
            r.stop()
        try:
            wait_until("status: all down", lambda: "all are down" in self.status()["message"],
                       WINDOW + 2)
            self.assertEqual(self.answers()[0], sorted(VIPS))
        finally:
            for r in self.regions.values():
                r.start()
        wait_until("both up again", lambda: "2 of 2 members up" in self.status()["message"],
                   WINDOW + 2)

    def test_5_bad_input_names_the_field(self):
        cases = [
            ({"zone": ""}, "spec.zone"),
            ({"name": "a b"}, "spec.name"),
            ({"ttl": -1}, "spec.ttl"),
            ({"ttl": 100000}, "spec.ttl"),
            ({"members": []}, "spec.members"),
            ({"members": [{"address": "300.1.1.1"}]}, "spec.members[0].address"),
            ({"members": [{"address": VIPS[0], "regionService": "x"}]}, "spec.members[0]"),
            ({"members": [{"address": VIPS[0]}, {"address": VIPS[0]}]}, "spec.members[1]"),
            ({"members": [{"regionService": "Bad_Name"}]}, "spec.members[0].regionService"),
            ({"healthCheck": {"intervalMs": 1000}}, "spec.healthCheck.port"),
            ({"healthCheck": {"port": 70000}}, "spec.healthCheck.port"),
            ({"healthCheck": {"port": 80, "intervalMs": 50}}, "spec.healthCheck.intervalMs"),
            ({"healthCheck": {"port": 80, "timeoutMs": 5000}}, "spec.healthCheck.timeoutMs"),
            ({"healthCheck": {"port": 80, "fall": 101}}, "spec.healthCheck.fall"),
        ]
        for change, field in cases:
            doc = self.gs(name="bad")
            doc["spec"].update(change)
            if "healthCheck" in change:
                doc["spec"]["healthCheck"] = change["healthCheck"]
            code, body = self.api.call("POST", "/v1/namespaces/team-a/globalservices", doc)
            self.assertEqual(code, 400, (change, body))
            self.assertIn(field, body["error"]["message"], (change, body))
        code, _ = self.api.call("GET", "/v1/namespaces/team-a/globalservices/bad")
        self.assertEqual(code, 404)

    def test_5b_config_refusals_name_the_key(self):
        # One checker, or a quorum of one, would let one vantage point remove a region.
        token = os.path.join(self.dns.data_dir, "api.token")
        for extra, want in (("    quorum: 1\n", "quorum: want 2..2"),
                            ("    checkers: self\n", "quorum: want 2..1"),
                            ("    checkers: self, self\n", "'self' is listed twice"),
                            ("    checkers: self, http://127.0.0.1:1\n", "token_file"),
                            ("    bogus: 1\n", "unknown key 'bogus'")):
            bad = os.path.join(self.tmp, "bad.yaml")
            with open(bad, "w") as f:
                f.write("providers:\n  - driver: gslb\n    endpoint: http://127.0.0.1:%d\n"
                        "    token_file: %s\n%s" % (self.dns.api_port, token, extra))
            r = subprocess.run([SERVER, "--config", bad, "--data-dir",
                                os.path.join(self.tmp, "bad"), "--listen",
                                "127.0.0.1:%d" % harness.free_port(), "--grpc-listen",
                                "127.0.0.1:%d" % harness.free_port()],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, extra)
            self.assertIn(want, r.stdout + r.stderr, extra)

    def test_6_cli_short_name(self):
        self.ensure_gs()
        out = self.photon("get", "gs", "web", "-n", "team-a", "-o", "yaml")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("127.0.0.3", out.stdout)
        out = self.photon("list", "globalservices", "-n", "team-a")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("web", out.stdout)

    def test_7_region_service_member_waits_for_a_vip(self):
        code, body = self.api.call("POST", "/v1/namespaces/team-a/globalservices", {
            "kind": "GlobalService", "metadata": {"name": "rs", "namespace": "team-a"},
            "spec": {"zone": "gslb-test", "name": "rs", "members": [{"regionService": "nope"}]}})
        self.assertEqual(code, 202, body)
        wait_until("rs member waiting", lambda: "no RegionService 'nope'" in (
            self.status("rs") or {}).get("details", {}).get("member.nope", ""), 10)
        self.assertEqual(self.status("rs")["phase"], "PENDING")
        self.assertEqual(self.dns.dig("rs.gslb.test", "A")["answer"], [])
        self.api.call("DELETE", "/v1/namespaces/team-a/globalservices/rs")

    def test_8_delete_removes_the_records(self):
        self.ensure_gs()
        code, body = self.api.call("DELETE", "/v1/namespaces/team-a/globalservices/web")
        self.assertIn(code, (200, 202), body)
        wait_until("records gone", lambda: self.answers()[0] == [], 10)
        code, zone = self.flash.call("GET", "/v1/zones/gslb.test.")
        self.assertEqual(code, 200, zone)
        self.assertFalse([r for r in zone["records"]
                          if r.get("owner", "").startswith("photon:globalservices/")], zone)


if __name__ == "__main__":
    unittest.main(verbosity=2)
