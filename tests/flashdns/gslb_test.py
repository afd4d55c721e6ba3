"""GSLB in flashdns: A records with a TCP health check (a GlobalService's name answered with
the VIPs of the regions whose load balancers accept connections). A real flashdns, real dig,
two "region VIPs" (127.0.0.2 and 127.0.0.3) served by TCP listeners this test starts and
stops."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BINARY = os.environ.get("FLASHDNS_BIN", "flashdns")
NAME = "web.gslb.test"
VIPS = ("127.0.0.2", "127.0.0.3")



def wait_until(what, fn, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return time.time()
        time.sleep(0.05)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))


class GslbTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.FlashDns(BINARY, [])
        cls.srv.start()
        cls.port = harness.free_port()
        cls.regions = {vip: harness.TcpRegion(vip, cls.port) for vip in VIPS}

    @classmethod
    def tearDownClass(cls):
        for r in cls.regions.values():
            if not r.stopped:
                r.stop()
        cls.srv.stop()

    def api(self, method, path, body=None):
        return harness_api(self.srv, method, path, body)

    def answer(self):
        r = self.srv.dig(NAME, "A")
        return sorted(x[4] for x in r["answer"])

    def check(self, **kw):
        c = {"type": "tcp", "port": self.port, "interval_ms": 200, "timeout_ms": 200,
             "rise": 2, "fall": 2}
        c.update(kw)
        return c

    def test_1_failed_region_leaves_the_answer_and_comes_back(self):
        status, out = self.api("POST", "/v1/zones", {"name": "gslb.test", "ns": ["ns1.gslb.test."]})
        self.assertEqual(status, 201, out)
        for vip in VIPS:
            status, out = self.api("POST", "/v1/zones/gslb.test/records",
                                   {"name": "web", "type": "A", "ttl": 5, "data": vip,
                                    "health_check": self.check()})
            self.assertEqual(status, 201, out)
            self.assertEqual(out["health_check"]["port"], self.port)
        self.assertEqual(self.answer(), list(VIPS))
        # Region 127.0.0.3 fails: its VIP leaves the answer (fall 2 x 200 ms).
        t0 = time.time()
        self.regions["127.0.0.3"].stop()
        gone = wait_until("the failed region's VIP out of the answer",
                          lambda: self.answer() == ["127.0.0.2"], 10)
        print("\nregion down -> VIP out of the answer: %.2f s (checks every 200 ms, fall 2, "
              "TTL 5 s)" % (gone - t0))
        status, zone = self.api("GET", "/v1/zones/gslb.test")
        health = {r["data"]: r["healthy"] for r in zone["records"]}
        self.assertEqual(health, {"127.0.0.2": True, "127.0.0.3": False})
        # Recovery brings it back.
        self.regions["127.0.0.3"] = harness.TcpRegion("127.0.0.3", self.port)
        wait_until("the recovered region's VIP back", lambda: self.answer() == list(VIPS), 10)
        # Every region failing: all are served (an empty answer helps no client).
        for vip in VIPS:
            self.regions[vip].stop()
        wait_until("both unhealthy", lambda: not any(
            r["healthy"] for r in self.api("GET", "/v1/zones/gslb.test")[1]["records"]), 10)
        self.assertEqual(self.answer(), list(VIPS))
        for vip in VIPS:
            self.regions[vip] = harness.TcpRegion(vip, self.port)

    def test_2_checks_survive_a_restart(self):
        self.srv.stop()
        self.srv.start()
        status, zone = self.api("GET", "/v1/zones/gslb.test")
        self.assertEqual(status, 200, zone)
        self.assertEqual([r["health_check"]["port"] for r in zone["records"]], [self.port] * 2)
        wait_until("served after the restart", lambda: self.answer() == list(VIPS), 10)

    def test_3_bad_checks_are_refused_naming_the_field(self):
        for body, field in (
                ({"name": "c", "type": "CNAME", "data": NAME + ".",
                  "health_check": self.check()}, "health_check: only A and AAAA"),
                ({"name": "web", "type": "A", "data": "127.0.0.4",
                  "health_check": self.check(bogus=1)}, "health_check.bogus: unknown field"),
                ({"name": "web", "type": "A", "data": "127.0.0.4",
                  "health_check": {"type": "tcp"}}, "health_check.port: required"),
                ({"name": "web", "type": "A", "data": "127.0.0.4",
                  "health_check": self.check(type="http")}, "health_check.type")):
            status, out = self.api("POST", "/v1/zones/gslb.test/records", body)
            self.assertEqual(status, 400, out)
            self.assertIn(field, out["error"]["message"])

    def test_4_probe_answers_from_this_vantage_point(self):
        # POST /v1/probe: photon-server's gslb provider asks each flashdns checker.
        closed = harness.free_port()
        status, out = self.api("POST", "/v1/probe", {"timeout_ms": 200, "targets": [
            {"address": "127.0.0.2", "port": self.port},
            {"address": "127.0.0.2", "port": closed}]})
        self.assertEqual(status, 200, out)
        self.assertEqual([r["result"] for r in out["results"]], ["ok", "Connection refused"])
        for body, field in (
                ({"targets": []}, "targets"),
                ({"targets": [{"address": "web", "port": 1}]}, "targets[0].address"),
                ({"targets": [{"address": "127.0.0.2", "port": 0}]}, "targets[0].port"),
                ({"timeout_ms": 1, "targets": [{"address": "127.0.0.2", "port": 1}]},
                 "timeout_ms")):
            status, out = self.api("POST", "/v1/probe", body)
            self.assertEqual(status, 400, out)
            self.assertIn(field, out["error"]["message"])


def harness_api(srv, method, path, body=None):
    import json
    import urllib.error
    import urllib.request
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (srv.api_port, path), method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", "Bearer " + srv.token())
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


if __name__ == "__main__":
    unittest.main(verbosity=2)
