"""fiberlb L7 end to end: a real fiberlb running the real HAProxy 2.6, driven through its REST
API, with real clients (curl, wrk, openssl-made certificates) and real member processes."""
import json
import os
import re
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Member, FiberLb, free_port, get_json, curl, wait_until  # noqa: E402

FAST_CHECK = {"type": "http", "path": "/", "interval_ms": 200, "rise": 1, "fall": 2}


def pool(name, members, **extra):
    p = {"name": name, "members": [{"name": m.name, "address": m.address} for m in members],
         "health_check": FAST_CHECK}
    p.update(extra)
    return p


def make_cert(tmp, name):
    cert, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=" + name, "-addext", "subjectAltName=DNS:" + name, "-keyout", key,
                    "-out", cert], check=True, capture_output=True, timeout=30)
    with open(cert) as c, open(key) as k:
        return cert, c.read(), k.read()


def members_seen(port, n, **kw):
    return [get_json(port, **kw)["member"] for _ in range(n)]


class RoutingTest(unittest.TestCase):
    """Host and path routing, X-Forwarded-For, TLS with SNI, HTTP/2, PROXY v2, stickiness."""

    @classmethod
    def setUpClass(cls):
        cls.a, cls.b, cls.c = Member("a"), Member("b"), Member("c")
        cls.p1, cls.p2 = Member("p1", proxy_v2=True), Member("p2", proxy_v2=True)
        cls.port = free_port()
        cls.lb = FiberLb(
            listeners=[{"name": "web", "protocol": "http", "address": "127.0.0.1:%d" % cls.port,
                        "pool": "c",
                        "routes": [{"host": "a.example", "pool": "a"},
                                   {"path_prefix": "/b/", "pool": "b"}]}],
            pools=[pool("a", [cls.a]), pool("b", [cls.b]), pool("c", [cls.c])]).start()

    @classmethod
    def tearDownClass(cls):
        cls.lb.stop()
        for m in (cls.a, cls.b, cls.c, cls.p1, cls.p2):
            m.kill()

    def test_host_and_path_routing_with_forwarded_for(self):
        self.assertEqual(get_json(self.port, host="a.example")["member"], "a")
        self.assertEqual(get_json(self.port, host="A.Example:80")["member"], "a")
        self.assertEqual(get_json(self.port, "/b/x")["member"], "b")
        self.assertEqual(get_json(self.port, "/bx")["member"], "c")
        seen = get_json(self.port, "/other", host="z.example")
        self.assertEqual(seen["member"], "c")
        self.assertEqual(seen["xff"], "127.0.0.1")

    def test_sni_two_certificates_and_http2(self):
        tmp = harness.make_tmp()
        one_file, one_cert, one_key = make_cert(tmp, "one.test")
        two_file, two_cert, two_key = make_cert(tmp, "two.test")
        port = free_port()
        status, body = self.lb.api("PUT", "/v1/listeners/tls", {
            "protocol": "https", "address": "127.0.0.1:%d" % port, "pool": "c",
            "routes": [{"host": "two.test", "pool": "b"}],
            "certificates": [{"cert": one_cert, "key": one_key},
                             {"cert": two_cert, "key": two_key, "sni": ["two.test"]}]})
        self.assertEqual(status, 200, body)
        for name, ca, member in (("one.test", one_file, "c"), ("two.test", two_file, "b")):
            # --cacert with only that name's certificate: the handshake fails unless the
            # listener picked the certificate by SNI.
            out = curl("https://%s:%d/" % (name, port), "--http2", "--cacert", ca, "--resolve",
                       "%s:%d:127.0.0.1" % (name, port), "-w", "\n%{http_version}")
            body, version = out.rsplit("\n", 1)
            self.assertEqual(version, "2", out)
            self.assertEqual(json.loads(body)["member"], member)
        # The wrong CA for a name fails: the check above is not vacuous.
        with self.assertRaises(AssertionError):
            curl("https://two.test:%d/" % port, "--cacert", one_file, "--resolve",
                 "two.test:%d:127.0.0.1" % port)
        self.assertEqual(self.lb.api("DELETE", "/v1/listeners/tls")[0], 200)

    def test_proxy_v2_seen_by_member(self):
        port = free_port()
        self.assertEqual(self.lb.api("PUT", "/v1/pools/pp", pool(
            "pp", [self.p1], proxy_protocol="v2"))[0], 200)
        status, body = self.lb.api("PUT", "/v1/listeners/pp", {
            "protocol": "tcp", "address": "127.0.0.1:%d" % port, "pool": "pp"})
        self.assertEqual(status, 200, body)
        wait_until(lambda: self.lb.member_status("pp")["p1"] == "UP", 10, "p1 UP")
        seen = get_json(port)
        self.assertEqual(seen["member"], "p1")
        self.assertEqual(seen["proxy_src"], "127.0.0.1")
        self.assertEqual(self.lb.api("DELETE", "/v1/listeners/pp")[0], 200)
        self.assertEqual(self.lb.api("DELETE", "/v1/pools/pp")[0], 200)

    def test_rate_limit_per_client(self):
        port = free_port()
        status, body = self.lb.api("PUT", "/v1/listeners/rl", {
            "protocol": "http", "address": "127.0.0.1:%d" % port, "pool": "c",
            "rate_limit": {"requests": 3, "period_s": 30}})
        self.assertEqual(status, 200, body)
        codes = [curl("http://127.0.0.1:%d/" % port, "-o", "/dev/null", "-w", "%{http_code}")
                 for _ in range(5)]
        self.assertEqual(codes, ["200", "200", "200", "429", "429"])
        self.assertEqual(self.lb.api("DELETE", "/v1/listeners/rl")[0], 200)

    def test_sticky_sessions(self):
        port = free_port()
        self.assertEqual(self.lb.api("PUT", "/v1/pools/st", pool(
            "st", [self.a, self.b], sticky=True))[0], 200)
        self.assertEqual(self.lb.api("PUT", "/v1/listeners/st", {
            "protocol": "http", "address": "127.0.0.1:%d" % port, "pool": "st"})[0], 200)
        wait_until(lambda: set(self.lb.member_status("st").values()) == {"UP"}, 10, "both UP")
        # Without the cookie requests spread over both members.
        self.assertEqual(set(members_seen(port, 6)), {"a", "b"})
        out = subprocess.run(["curl", "-sS", "-D", "-", "http://127.0.0.1:%d/" % port],
                             capture_output=True, timeout=10).stdout.decode()
        cookie = [l.split(":", 1)[1].strip().split(";")[0] for l in out.splitlines()
                  if l.lower().startswith("set-cookie:")]
        self.assertEqual(len(cookie), 1, out)
        first = json.loads(out.split("\r\n\r\n", 1)[1])["member"]
        self.assertEqual(cookie[0], "FIBERLB=" + first)
        self.assertEqual(set(members_seen(port, 8, headers=["Cookie: " + cookie[0]])), {first})
        self.assertEqual(self.lb.api("DELETE", "/v1/listeners/st")[0], 200)
        self.assertEqual(self.lb.api("DELETE", "/v1/pools/st")[0], 200)


class HealthAndChurnTest(unittest.TestCase):
    """Health checks take a dead member out; wrk sees no failure while members come and go
    and while a listener changes (hitless reload)."""

    def setUp(self):
        self.members = [Member("m1"), Member("m2")]
        self.port = free_port()
        self.lb = FiberLb(
            listeners=[{"name": "web", "protocol": "http",
                        "address": "127.0.0.1:%d" % self.port, "pool": "web"}],
            pools=[pool("web", self.members, drain_timeout_ms=3000)]).start()
        wait_until(lambda: set(self.lb.member_status("web").values()) == {"UP"}, 10, "all UP")

    def tearDown(self):
        self.lb.stop()
        for m in self.members:
            m.kill()

    def test_killed_member_leaves_rotation_after_fall_count(self):
        self.members[0].kill()
        # fall 2 at 200 ms: DOWN within a second or so; poll rather than sleep.
        wait_until(lambda: self.lb.member_status("web")["m1"].startswith("DOWN"), 10, "m1 DOWN")
        self.assertEqual(set(members_seen(self.port, 30)), {"m2"})
        metrics = self.lb.metrics()
        self.assertIn('fiberlb_member_up{pool="web",member="m1"} 0', metrics)
        self.assertIn('fiberlb_member_up{pool="web",member="m2"} 1', metrics)
        self.assertRegex(metrics, r'fiberlb_listener_requests_total\{listener="web"\} [1-9]')
        with open(os.path.join(self.lb.data_dir, "access.log")) as f:
            self.assertIn("l_web p_web/m2", f.read())

    def test_passive_ejection_takes_out_a_member_failing_requests(self):
        bad = Member("bad", fail=True)
        self.members.append(bad)
        port = free_port()
        # Checks on / pass for every member; only traffic (to /fail) shows "bad" failing.
        check = dict(FAST_CHECK, interval_ms=60000)
        self.assertEqual(self.lb.api("PUT", "/v1/pools/pe", pool(
            "pe", [self.members[1]], health_check=check,
            passive_ejection={"errors": 2}))[0], 200)
        self.assertEqual(self.lb.api("PUT", "/v1/listeners/pe", {
            "protocol": "http", "address": "127.0.0.1:%d" % port, "pool": "pe"})[0], 200)
        # Added at run time: "add server" carries the ejection options too.
        self.assertEqual(self.lb.api("POST", "/v1/pools/pe/members",
                                     {"name": "bad", "address": bad.address})[0], 201)
        wait_until(lambda: self.lb.member_status("pe")["bad"].startswith("UP"), 10, "bad UP")
        codes = [curl("http://127.0.0.1:%d/fail" % port, "-o", "/dev/null", "-w",
                      "%{http_code}") for _ in range(6)]
        self.assertIn("500", codes[:4])
        wait_until(lambda: self.lb.member_status("pe")["bad"].startswith("DOWN"), 10, "bad DOWN")
        self.assertEqual(set(members_seen(port, 6, path="/fail")), {"m2"})

    def test_wrk_sees_no_failure_while_members_and_listener_change(self):
        url = "http://127.0.0.1:%d/" % self.port
        wrk = harness.run_wrk(url, seconds=8)
        extra = [Member("m3"), Member("m4")]
        self.members += extra
        def requests_served():
            m = re.search(r'fiberlb_listener_requests_total\{listener="web"\} (\d+)',
                          self.lb.metrics())
            return m and int(m.group(1)) > 200
        wait_until(requests_served, 10, "wrk under way")  # the changes land under load
        for m in extra:
            status, body = self.lb.api("POST", "/v1/pools/web/members",
                                       {"name": m.name, "address": m.address})
            self.assertEqual(status, 201, body)
        wait_until(lambda: self.lb.member_status("web").get("m4") == "UP", 10, "m4 UP")
        status, body = self.lb.api("PUT", "/v1/pools/web/members/m3",
                                   {"address": extra[0].address, "weight": 5})
        self.assertEqual(status, 200, body)
        self.assertEqual(self.lb.api("DELETE", "/v1/pools/web/members/m1")[0], 202)
        # A listener change: a new route on the same listener, which reloads HAProxy.
        status, body = self.lb.api("PUT", "/v1/listeners/web", {
            "protocol": "http", "address": "127.0.0.1:%d" % self.port, "pool": "web",
            "routes": [{"path_prefix": "/nothing-here/", "pool": "web"}]})
        self.assertEqual(status, 200, body)
        self.assertEqual(self.lb.api("DELETE", "/v1/pools/web/members/m2")[0], 202)
        out = wrk.communicate(timeout=60)[0].decode()
        non2xx, errors, requests = harness.wrk_failures(out)
        self.assertGreater(requests, 500, out)
        self.assertEqual((non2xx, errors), (0, 0), out)
        # The drained members are gone from HAProxy; the new ones serve.
        wait_until(lambda: set(self.lb.member_status("web")) == {"m3", "m4"}, 10, "m3, m4")
        wait_until(lambda: not self.lb.api("GET", "/v1/pools/web")[1]["draining"], 10,
                   "drains done")
        self.assertEqual(set(members_seen(self.port, 12)), {"m3", "m4"})


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.lb = FiberLb(
            listeners=[{"name": "web", "protocol": "http", "address": "127.0.0.1:%d" % cls.port,
                        "pool": "web"}],
            pools=[{"name": "web"}]).start()

    @classmethod
    def tearDownClass(cls):
        cls.lb.stop()

    def assertRefused(self, method, path, body, field):
        status, answer = self.lb.api(method, path, body)
        self.assertEqual(status, 400, answer)
        self.assertIn(field, answer["error"]["message"])

    def test_overlapping_listeners(self):
        self.assertRefused("PUT", "/v1/listeners/dup", {
            "protocol": "tcp", "address": "127.0.0.1:%d" % self.port, "pool": "web"},
            "listeners.dup.address")
        self.assertRefused("PUT", "/v1/listeners/any", {
            "protocol": "http", "address": "0.0.0.0:%d" % self.port, "pool": "web"},
            "listeners.any.address")
        self.assertRefused("PUT", "/v1/listeners/api", {
            "protocol": "http", "address": "127.0.0.1:%d" % self.lb.api_port, "pool": "web"},
            "listeners.api.address")

    def test_certificate_not_matching_key(self):
        tmp = harness.make_tmp()
        _, one_cert, _ = make_cert(tmp, "one.test")
        _, _, two_key = make_cert(tmp, "two.test")
        self.assertRefused("PUT", "/v1/listeners/tls", {
            "protocol": "https", "address": "127.0.0.1:%d" % free_port(), "pool": "web",
            "certificates": [{"cert": one_cert, "key": two_key}]},
            "listeners.tls.certificates[0].key")

    def test_l7_options_on_tcp_listener(self):
        for option, value in (("routes", [{"host": "a.example", "pool": "web"}]),
                              ("rate_limit", {"requests": 10}), ("forwarded_for", True)):
            body = {"protocol": "tcp", "address": "127.0.0.1:%d" % free_port(), "pool": "web",
                    option: value}
            self.assertRefused("PUT", "/v1/listeners/t", body, "listeners.t." + option)
        self.assertEqual(self.lb.api("PUT", "/v1/pools/sticky", {"sticky": True})[0], 200)
        self.assertRefused("PUT", "/v1/listeners/t", {
            "protocol": "tcp", "address": "127.0.0.1:%d" % free_port(), "pool": "sticky"},
            "listeners.t.pool")

    def test_unknown_fields_and_bad_values(self):
        self.assertRefused("PUT", "/v1/pools/x", {"bogus": 1}, "pools.x.bogus")
        self.assertRefused("PUT", "/v1/pools/x", {"health_check": {"typo": "http"}},
                           "pools.x.health_check.typo")
        self.assertRefused("PUT", "/v1/pools/x", {"algorithm": "random"}, "pools.x.algorithm")
        self.assertRefused("POST", "/v1/pools/web/members", {"address": "nowhere"},
                           "member.address")
        self.assertRefused("PUT", "/v1/listeners/x", {
            "protocol": "http", "address": "127.0.0.1:%d" % free_port(), "pool": "none"},
            "listeners.x.pool")
        # Nothing of the refused requests reached the state.
        status, state = self.lb.api("GET", "/v1/state")
        self.assertEqual([l["name"] for l in state["listeners"]], ["web"])

    def test_unknown_field_in_config_file_fails_start(self):
        lb = FiberLb(pools=[{"name": "p", "members": [{"address": "127.0.0.1:1", "wieght": 2}]}])
        lb.start(wait=False)
        self.assertEqual(lb.proc.wait(timeout=20), 2)
        self.assertIn("pools[0].members[0].wieght: unknown field", lb.output())

    def test_token_required(self):
        status, _ = self.lb.api("GET", "/v1/state", token="wrong")
        self.assertEqual(status, 401)
        mode = os.stat(os.path.join(self.lb.data_dir, "api.token")).st_mode & 0o777
        self.assertEqual(mode, 0o600)
        self.assertEqual(os.stat(self.lb.data_dir).st_mode & 0o777, 0o700)


class RestartTest(unittest.TestCase):
    """The API's changes survive a restart and a kill -9; HAProxy never outlives fiberlb."""

    def test_restart_and_kill9_reapply_state_without_orphans(self):
        a, b = Member("a"), Member("b")
        try:
            port = free_port()
            lb = FiberLb(listeners=[{"name": "web", "protocol": "http",
                                     "address": "127.0.0.1:%d" % port, "pool": "web"}],
                         pools=[pool("web", [a])]).start()
            port2 = free_port()
            self.assertEqual(lb.api("POST", "/v1/pools/web/members",
                                    {"name": "b", "address": b.address, "weight": 2})[0], 201)
            self.assertEqual(lb.api("PUT", "/v1/listeners/second", {
                "protocol": "http", "address": "127.0.0.1:%d" % port2, "pool": "web"})[0], 200)
            _, before = lb.api("GET", "/v1/state")
            for sig in (signal.SIGTERM, signal.SIGKILL):
                pids = harness.haproxy_pids(lb.run_dir)
                self.assertTrue(pids)
                lb.stop(sig)  # asserts that no HAProxy of this fiberlb is left
                lb.start()
                _, after = lb.api("GET", "/v1/state")
                self.assertEqual(after, before)
                wait_until(lambda: set(lb.member_status("web").values()) == {"UP"}, 10, "UP")
                self.assertEqual(set(members_seen(port2, 6)), {"a", "b"})
                self.assertFalse(set(pids) & set(harness.haproxy_pids(lb.run_dir)))
            lb.stop()
        finally:
            a.kill()
            b.kill()


class HaproxyCrashTest(unittest.TestCase):
    def test_killed_haproxy_master_is_restarted_with_runtime_changes(self):
        a, b = Member("a"), Member("b")
        try:
            port = free_port()
            lb = FiberLb(listeners=[{"name": "web", "protocol": "http",
                                     "address": "127.0.0.1:%d" % port, "pool": "web"}],
                         pools=[pool("web", [a])]).start()
            # A reload first leaves a server-state file behind (a: weight 1) ...
            self.assertEqual(lb.api("PUT", "/v1/listeners/other", {
                "protocol": "http", "address": "127.0.0.1:%d" % free_port(),
                "pool": "web"})[0], 200)
            # ... then changes made at run time only (no reload) must survive HAProxy's restart.
            self.assertEqual(lb.api("POST", "/v1/pools/web/members",
                                    {"name": "b", "address": b.address, "weight": 3})[0], 201)
            self.assertEqual(lb.api("PUT", "/v1/pools/web/members/a",
                                    {"address": a.address, "weight": 0})[0], 200)
            with open(os.path.join(lb.run_dir, "haproxy.pid")) as f:
                master = int(f.read().split()[0])
            os.kill(master, signal.SIGKILL)
            wait_until(lambda: master not in harness.haproxy_pids(lb.run_dir), 10, "old gone")
            wait_until(lambda: lb.member_status("web").get("b") == "UP", 15, "b UP again")
            self.assertEqual(set(members_seen(port, 6)), {"b"})  # a's weight 0 kept
            self.assertIn('fiberlb_member_weight{pool="web",member="b"} 3', lb.metrics())
            lb.stop()
        finally:
            a.kill()
            b.kill()


class ExampleTest(unittest.TestCase):
    def test_example_config_serves_and_drops_stopped_member(self):
        root = os.path.dirname(os.path.dirname(harness.HERE))
        with open(os.path.join(root, "examples", "fiberlb.yaml")) as f:
            text = f.read()
        a, b = Member("a"), Member("b")
        try:
            port = free_port()
            text = (text.replace("127.0.0.1:18081", a.address)
                    .replace("127.0.0.1:18082", b.address)
                    .replace("127.0.0.1:18080", "127.0.0.1:%d" % port))
            lb = FiberLb()
            text = text.replace("127.0.0.1:18090", "127.0.0.1:%d" % lb.api_port)
            text = text.replace("/tmp/fiberlb-example", lb.data_dir)
            with open(lb.config_path, "w") as f:
                f.write(text)
            lb.start()
            wait_until(lambda: set(lb.member_status("web").values()) == {"UP"}, 10, "UP")
            self.assertEqual(set(members_seen(port, 6)), {"a", "b"})
            b.kill()
            wait_until(lambda: lb.member_status("web")["127_0_0_1_%d" % b.port] != "UP", 10,
                       "b out")
            self.assertEqual(set(members_seen(port, 6)), {"a"})
            lb.stop()
        finally:
            a.kill()
            b.kill()


if __name__ == "__main__":
    unittest.main(verbosity=2)
