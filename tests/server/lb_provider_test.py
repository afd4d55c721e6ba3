#!/usr/bin/env python3
"""RegionService load balancers end to end: a real photon-server configured with the fiberlb
provider, a real fiberlb running the real HAProxy, and a real photon-agent (network mode
`shared`) running the RegionService's replicas as process instances that serve HTTP.

Asserted: a RegionService with 2 replicas and spec.loadBalancer gets its LoadBalancer object,
a fiberlb listener on the VIP and a pool whose members are exactly its RUNNING replicas; curl
through the VIP answers 200 from a RUNNING replica; scaling 2 -> 5 -> 1 keeps the pool equal to
the RUNNING replicas at every step (a replica that leaves is drained, then gone from HAProxy),
and a replica stopped at 5 leaves the pool until it is started again;
the LoadBalancer's status shows the VIP and each member's health; deleting the RegionService
removes the LoadBalancer, the fiberlb listener and pool and HAProxy's backend. Users cannot
create or delete a LoadBalancer, and a server without the fiberlb provider refuses a
spec.loadBalancer.

In network mode `shared` every replica's address is the node's (127.0.0.1), so the replicas
share the target port with SO_REUSEPORT (they run privileged, as root, which SO_REUSEPORT
needs across processes); each answers with its instance name. Every wait is bounded; every
process is stopped at the end.

usage: lb_provider_test.py BUILD_DIR"""
import glob
import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest
import urllib.request

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "flashdns"))
import harness  # noqa: E402  (flashdns's test harness: daemons, free ports, temp dirs)
from provider_harness import Http, start_photon_server, wait_until  # noqa: E402

SERVER = os.path.join(BUILD, "src/server/photon-server")
AGENT = os.path.join(BUILD, "src/agent/photon-agent")
FIBERLB = os.path.join(BUILD, "src/fiberlb/fiberlb")
NS = "default"
RS = "web"

# A replica: HTTP on 127.0.0.1:PORT (shared with the other replicas), answering its name.
MEMBER = r"""
import http.server, os, socket, sys
name = os.environ["PHOTON_INSTANCE"].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

# A replica keeping its connections: answers every line with its name (test_6's drain).
LINE_MEMBER = r"""
import os, socket, sys, threading
name = (os.environ["PHOTON_INSTANCE"] + "\n").encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
def serve(c):
    with c, c.makefile("rb") as f:
        for _ in f:
            c.sendall(name)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""


class FiberLb:
    def __init__(self, tmp):
        self.tmp = tmp
        self.api_port = harness.free_port()
        self.data = os.path.join(tmp, "fiberlb")
        self.config = os.path.join(tmp, "fiberlb.yaml")
        with open(self.config, "w") as f:
            json.dump({"api": "127.0.0.1:%d" % self.api_port, "data_dir": self.data}, f)
        self.daemon = harness.Daemon([FIBERLB, "--config", self.config],
                                     os.path.join(tmp, "fiberlb.log"))

        def healthy():
            if self.daemon.proc.poll() is not None:
                raise AssertionError("fiberlb exited:\n" + self.daemon.output())
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.api_port, timeout=1)
                return True
            except OSError:
                return False
        wait_until("fiberlb /healthz", healthy, 20)
        self.token_file = os.path.join(self.data, "api.token")
        with open(self.token_file) as f:
            self.api = Http("http://127.0.0.1:%d" % self.api_port, f.read().strip())

    def state(self):
        status, body = self.api.call("GET", "/v1/state")
        assert status == 200, body
        return body

    def haproxy_config(self):
        with open(os.path.join(self.data, "run", "haproxy.cfg")) as f:
            return f.read()


def curl(url):
    """(HTTP status, body); status 0 when the connection failed."""
    out = subprocess.run(["curl", "-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}",
                          url], capture_output=True, text=True, timeout=10)
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body


class LoadBalancerProviderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = []
        try:
            cls.start_daemons()
        except BaseException:
            for d in reversed(cls.procs):  # tearDownClass does not run after a failed setup
                d.stop()
            raise

    @classmethod
    def start_daemons(cls):
        cls.tmp = harness.make_tmp("photon-lb-")
        cls.lb = FiberLb(cls.tmp)
        cls.procs.append(cls.lb.daemon)
        cls.port = harness.free_port()
        cls.data = os.path.join(cls.tmp, "server")
        config = os.path.join(cls.tmp, "photon-server.yaml")
        with open(config, "w") as f:
            f.write("provider_resync_s: 2\n"
                    "providers:\n"
                    "  - driver: fiberlb\n"
                    "    endpoint: http://127.0.0.1:%d\n"
                    "    token_file: %s\n"
                    "    listen_address: 127.0.0.1\n"
                    "    drain_timeout_ms: 8000\n" % (cls.lb.api_port, cls.lb.token_file))
        cls.server = start_photon_server(SERVER, config, cls.data, cls.port, cls.tmp)
        cls.procs.append(cls.server)
        with open(os.path.join(cls.data, "admin.token")) as f:
            cls.api = Http("http://127.0.0.1:%d" % cls.port, f.read().strip())
        cls.agent = harness.Daemon(
            [AGENT, "--server", "127.0.0.1:%d" % cls.port, "--token-file",
             os.path.join(cls.data, "join.token"), "--data-dir", os.path.join(cls.tmp, "agent"),
             "--name", "lb-n1", "--heartbeat-seconds", "1", "--resync-seconds", "1",
             "--vcpu", "16", "--memory-mb", "8192", "--disk-gb", "20",
             "--network-mode", "shared"],
            os.path.join(cls.tmp, "agent.log"))
        cls.procs.append(cls.agent)
        wait_until("node lb-n1", lambda: cls.api.call(
            "GET", "/v1/namespaces/system/nodes/lb-n1")[0] == 200, 20)
        cls.vip_port = harness.free_port()
        cls.target_port = harness.free_port()

    @classmethod
    def tearDownClass(cls):
        # Replicas are the agent's children only in name: delete them through the API and
        # wait, so no workload outlives the test, then stop the daemons.
        try:
            cls.api.call("DELETE", "/v1/namespaces/%s/regionservices/%s" % (NS, RS))
            wait_until("replicas gone", lambda: not cls.instances(), 30)
        finally:
            for d in reversed(cls.procs):
                d.stop()

    # --- helpers -----------------------------------------------------------------------------

    @classmethod
    def instances(cls):
        status, body = cls.api.call(
            "GET", "/v1/namespaces/%s/computeinstances?labelSelector=photon.io/regionservice=%s"
            % (NS, RS))
        assert status == 200, body
        return body.get("items", [])

    def running(self):
        return {i["metadata"]["name"] for i in self.instances()
                if i.get("status", {}).get("phase") == "RUNNING"
                and not i["metadata"].get("deletionTimestamp")}

    def pool_name(self):
        return "photon.%s.%s.%d" % (NS, RS, self.vip_port)

    def pool(self):
        """(active member names, draining member names) as HAProxy reports them."""
        status, body = self.lb.api.call("GET", "/v1/pools/" + self.pool_name())
        if status == 404:
            return None
        assert status == 200, body
        return ({m["name"] for m in body["members"]}, {d["name"] for d in body["draining"]},
                body)

    def rs_body(self, replicas):
        return {"kind": "RegionService", "metadata": {"name": RS, "namespace": NS},
                "spec": {"replicas": replicas,
                         "template": {
                             "process": {"command": ["python3", "-c", MEMBER,
                                                     str(self.target_port)]},
                             "resources": {"vcpu": 1, "memoryMb": "64"},
                             "security": {"privileged": True}},
                         "loadBalancer": {
                             "type": "L7",
                             "listeners": [{"port": self.vip_port, "protocol": "HTTP",
                                            "targetPort": self.target_port}],
                             "healthCheck": {"type": "tcp", "intervalMs": 300, "rise": 1,
                                             "fall": 1}}}}

    def lb_phase(self):
        status, lb = self.api.call("GET", "/v1/namespaces/%s/loadbalancers/%s" % (NS, RS))
        return lb.get("status", {}).get("phase") if status == 200 else None

    def action(self, name, action):
        status, body = self.api.call(
            "POST", "/v1/namespaces/%s/computeinstances/%s/actions/%s" % (NS, name, action), {})
        self.assertEqual(status, 202, body)

    def scale(self, replicas, name=RS):
        path = "/v1/namespaces/%s/regionservices/%s" % (NS, name)
        for _ in range(20):  # the controller writes the status meanwhile: retry a conflict
            status, rs = self.api.call("GET", path)
            self.assertEqual(status, 200, rs)
            rs["spec"]["replicas"] = replicas
            status, body = self.api.call("PUT", path, rs)
            if status == 200:
                return
            self.assertEqual(status, 409, body)
        self.fail("scale to %d kept conflicting" % replicas)

    def settle(self, replicas):
        """Waits for `replicas` RUNNING replicas and no others, then for the pool to hold
        exactly them with nothing left draining; checks the data path and the status."""
        def settled():
            items = self.instances()
            names = {i["metadata"]["name"] for i in items}
            run = self.running()
            return run if len(run) == replicas and names == run else None
        running = wait_until("%d RUNNING replicas" % replicas, settled, 60)

        def pool_matches():
            p = self.pool()
            return p if p and p[0] == running and not p[1] else None
        _, _, body = wait_until("pool == RUNNING replicas %s" % sorted(running), pool_matches, 20)
        for m in body["members"]:
            self.assertEqual(m["address"], "127.0.0.1:%d" % self.target_port)
        served = set()
        for _ in range(3 * replicas):
            code, who = curl("http://127.0.0.1:%d/" % self.vip_port)
            self.assertEqual(code, 200, who)
            self.assertIn(who, running, "answered by a replica that is not RUNNING")
            served.add(who)
        # The LoadBalancer's status: the VIP and every member's health (all UP in time).

        def status_ok():
            status, lb = self.api.call("GET", "/v1/namespaces/%s/loadbalancers/%s" % (NS, RS))
            st = lb.get("status", {}) if status == 200 else {}
            members = {k[len("member."):]: v for k, v in st.get("details", {}).items()
                       if k.startswith("member.")}
            return (st if st.get("phase") == "RUNNING" and set(members) == running
                    and all(" UP" in v for v in members.values()) else None)
        st = wait_until("LoadBalancer status with %d UP members" % replicas, status_ok, 20)
        self.assertEqual(st.get("addresses"), ["127.0.0.1"])
        self.assertEqual(st["details"]["vip"], "127.0.0.1")
        return running

    # --- tests (in name order) -----------------------------------------------------------------

    def test_1_users_cannot_create_or_delete_a_loadbalancer(self):
        lb = {"kind": "LoadBalancer", "metadata": {"name": "mine", "namespace": NS},
              "spec": {"type": "L7", "listeners": [{"port": 8080, "protocol": "HTTP"}]}}
        status, body = self.api.call("POST", "/v1/namespaces/%s/loadbalancers" % NS, lb)
        self.assertEqual(status, 400, body)
        self.assertIn("only with its RegionService", json.dumps(body))
        bad = self.rs_body(1)
        bad["metadata"]["name"] = "bad"
        bad["spec"]["loadBalancer"]["type"] = "L4"
        status, body = self.api.call("POST", "/v1/namespaces/%s/regionservices" % NS, bad)
        self.assertEqual(status, 400, body)
        self.assertIn("spec.loadBalancer.type", json.dumps(body))
        bad = self.rs_body(1)
        bad["metadata"]["name"] = "bad"
        bad["spec"]["loadBalancer"]["listeners"][0]["protocol"] = "UDP"
        status, body = self.api.call("POST", "/v1/namespaces/%s/regionservices" % NS, bad)
        self.assertEqual(status, 400, body)
        self.assertIn("spec.loadBalancer.listeners[0].protocol", json.dumps(body))

    def test_2_scale_2_5_1_serves_only_running_replicas_then_delete_removes_all(self):
        t0 = time.monotonic()
        status, body = self.api.call("POST", "/v1/namespaces/%s/regionservices" % NS,
                                     self.rs_body(2))
        self.assertEqual(status, 202, body)
        status, lb = self.api.call("GET", "/v1/namespaces/%s/loadbalancers/%s" % (NS, RS))
        wait_until("LoadBalancer object", lambda: self.api.call(
            "GET", "/v1/namespaces/%s/loadbalancers/%s" % (NS, RS))[0] == 200, 10)
        status, lb = self.api.call("GET", "/v1/namespaces/%s/loadbalancers/%s" % (NS, RS))
        self.assertEqual(lb["spec"]["regionService"], RS)
        self.assertEqual(lb["metadata"]["labels"]["photon.io/regionservice"], RS)
        # Owned: a user's delete is refused, naming the rule.
        status, body = self.api.call("DELETE", "/v1/namespaces/%s/loadbalancers/%s" % (NS, RS))
        self.assertEqual(status, 400, body)
        self.assertIn("only with its RegionService", json.dumps(body))
        # The figure of bench/lb's "create to first 200 OK" (target <= 1 s after RUNNING).
        t_running = t_ok = None
        deadline = time.monotonic() + 60
        while t_ok is None and time.monotonic() < deadline:
            if t_running is None and self.running():
                t_running = time.monotonic()
            # Only once the listener is there: a connect to a free port of the ephemeral range
            # can pick that very port as its source and connect to itself, holding the VIP.
            if self.lb_phase() == "RUNNING" and curl("http://127.0.0.1:%d/" % self.vip_port)[0] == 200:
                t_ok = time.monotonic()
        self.assertIsNotNone(t_ok, "no 200 through the VIP within 60 s (LoadBalancer: %r)" % (
            self.api.call("GET", "/v1/namespaces/%s/loadbalancers/%s" % (NS, RS)),))
        t_running = t_running or t_ok
        print("create -> first replica RUNNING %.2f s, first 200 OK through the VIP %.2f s "
              "(%.2f s after RUNNING)" % (t_running - t0, t_ok - t0, t_ok - t_running))
        self.settle(2)
        self.scale(5)
        self.settle(5)
        # A replica that stops (SUSPENDED, its process gone) leaves the pool; started, it is back.
        self.action("web-1", "stop")
        running = wait_until("web-1 not RUNNING", lambda: (
            (lambda r: r if len(r) == 4 and "web-1" not in r else None)(self.running())), 30)
        wait_until("pool without the stopped web-1", lambda: (
            (lambda p: p and p[0] == running and not p[1])(self.pool())), 20)
        self.action("web-1", "start")
        self.settle(5)
        self.scale(1)
        self.settle(1)

        status, body = self.api.call("DELETE", "/v1/namespaces/%s/regionservices/%s" % (NS, RS))
        self.assertEqual(status, 202, body)
        wait_until("LoadBalancer deleted with its RegionService", lambda: self.api.call(
            "GET", "/v1/namespaces/%s/loadbalancers/%s" % (NS, RS))[0] == 404, 15)

        def fiberlb_clean():
            st = self.lb.state()
            names = [x["name"] for x in st["listeners"] + st["pools"]]
            return not any(n.startswith("photon.") for n in names)
        wait_until("fiberlb listener and pool removed", fiberlb_clean, 15)
        self.assertNotIn(self.pool_name(), self.lb.haproxy_config())
        self.assertEqual(curl("http://127.0.0.1:%d/" % self.vip_port)[0], 0)
        wait_until("replicas gone", lambda: not self.instances(), 30)

    def key_stored(self, ref):
        """Whether the server's store holds the listener key sha256:<ref> of NS."""
        db = glob.glob(os.path.join(self.data, "**", "state.db"), recursive=True)
        self.assertEqual(len(db), 1, db)
        con = sqlite3.connect("file:%s?mode=ro" % db[0], uri=True, timeout=10)
        try:
            key = "/secrets/loadbalancer-keys/%s/%s" % (NS, ref)
            return con.execute("SELECT count(*) FROM current WHERE CAST(key AS TEXT) = ?",
                               (key,)).fetchone()[0] == 1
        finally:
            con.close()

    def test_4_https_listener_with_a_write_only_key(self):
        """An HTTPS listener serves its certificate through the VIP; the private key is never
        returned (GET shows privateKeyRef), a read-back object can be written again, and a key
        that does not match its certificate, or an unknown reference, is refused naming the
        field."""
        d = os.path.join(self.tmp, "tls")
        os.makedirs(d)

        def make_cert(name):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                            "-subj", "/CN=" + name, "-addext", "subjectAltName=DNS:" + name,
                            "-keyout", os.path.join(d, name + ".key"),
                            "-out", os.path.join(d, name + ".crt")],
                           check=True, capture_output=True, timeout=30)
            with open(os.path.join(d, name + ".crt")) as c, open(os.path.join(d, name + ".key")) as k:
                return c.read(), k.read()
        cert, key = make_cert("web.test")
        _, other_key = make_cert("other.test")
        vip, target = harness.free_port(), harness.free_port()
        path = "/v1/namespaces/%s/regionservices/tls" % NS

        def body(name, certificates, protocol="HTTPS"):
            b = self.rs_body(1)
            b["metadata"]["name"] = name
            b["spec"]["template"]["process"]["command"][-1] = str(target)
            b["spec"]["loadBalancer"]["listeners"] = [
                {"port": vip, "protocol": protocol, "targetPort": target,
                 "certificates": certificates}]
            return b
        # Refused, naming the field: a key of another certificate, certificates on HTTP, none.
        for name, certs, proto, field in (
                ("tlsbad", [{"certificate": cert, "privateKey": other_key}], "HTTPS",
                 "spec.loadBalancer.listeners[0].certificates[0].privateKey"),
                ("tlsbad", [{"certificate": cert, "privateKey": key}], "HTTP",
                 "spec.loadBalancer.listeners[0].certificates"),
                ("tlsbad", [], "HTTPS", "spec.loadBalancer.listeners[0].certificates")):
            status, out = self.api.call("POST", "/v1/namespaces/%s/regionservices" % NS,
                                        body(name, certs, proto))
            self.assertEqual(status, 400, out)
            self.assertIn(field, json.dumps(out))
        status, out = self.api.call("POST", "/v1/namespaces/%s/regionservices" % NS,
                                    body("tls", [{"certificate": cert, "privateKey": key}]))
        self.assertEqual(status, 202, out)
        try:
            self.assertNotIn("PRIVATE KEY", json.dumps(out))
            url = "https://web.test:%d/" % vip
            curl_tls = ["curl", "-sS", "--max-time", "5", "--cacert",
                        os.path.join(d, "web.test.crt"), "--resolve",
                        "web.test:%d:127.0.0.1" % vip, "-o", "-", "-w", "\n%{http_code}", url]

            def served():
                if self.api.call("GET", "/v1/namespaces/%s/loadbalancers/tls" % NS)[1].get(
                        "status", {}).get("phase") != "RUNNING":
                    return None
                out = subprocess.run(curl_tls, capture_output=True, text=True, timeout=10)
                who, _, code = out.stdout.rpartition("\n")
                return who if code == "200" else None
            self.assertTrue(wait_until("200 over TLS through the VIP", served, 30)
                            .startswith("tls-"))
            # Write-only: neither the RegionService nor its LoadBalancer (get, list) has the key.
            status, rs = self.api.call("GET", path)
            self.assertEqual(status, 200, rs)
            for got in (rs, self.api.call("GET", "/v1/namespaces/%s/loadbalancers/tls" % NS)[1],
                        self.api.call("GET", "/v1/namespaces/%s/regionservices" % NS)[1],
                        self.api.call("GET", "/v1/namespaces/%s/loadbalancers" % NS)[1]):
                self.assertNotIn("PRIVATE KEY", json.dumps(got))
            c = rs["spec"]["loadBalancer"]["listeners"][0]["certificates"][0]
            self.assertFalse(c.get("privateKey"), c)  # printed empty, as every unset field
            self.assertTrue(c["privateKeyRef"].startswith("sha256:"), c)
            # Read back and written again (the reference keeps the key), still served.
            rs["spec"]["replicas"] = 1
            status, out = self.api.call("PUT", path, rs)
            self.assertEqual(status, 200, out)
            self.assertTrue(served())
            # A reference to no stored key is refused, naming it.
            status, rs = self.api.call("GET", path)
            rs["spec"]["loadBalancer"]["listeners"][0]["certificates"][0]["privateKeyRef"] = (
                "sha256:" + "0" * 64)
            status, out = self.api.call("PUT", path, rs)
            self.assertEqual(status, 400, out)
            self.assertIn("spec.loadBalancer.listeners[0].certificates[0].privateKeyRef",
                          json.dumps(out))
            # Deleted with its RegionService, the key leaves the store once no object refers
            # to it (after the collector's 10 s grace; resyncs every 2 s here).
            ref = c["privateKeyRef"][len("sha256:"):]
            self.assertTrue(self.key_stored(ref))
            status, out = self.api.call("DELETE", path)
            self.assertEqual(status, 202, out)
            self.assertTrue(wait_until("stored key collected",
                                       lambda: not self.key_stored(ref), 45))
        finally:
            self.api.call("DELETE", path)
            wait_until("tls LoadBalancer gone", lambda: self.api.call(
                "GET", "/v1/namespaces/%s/loadbalancers/tls" % NS)[0] == 404, 15)
            wait_until("tls replicas gone", lambda: not self.api.call(
                "GET", "/v1/namespaces/%s/computeinstances?labelSelector="
                "photon.io/regionservice=tls" % NS)[1].get("items"), 30)

    def test_5_routes_by_host_and_path_to_other_target_ports(self):
        """Routes send matching requests to another port of the same replicas (here one no
        replica listens on: HAProxy answers 503), the rest to the listener's targetPort; routes
        removed from the spec are removed from fiberlb with their pool. Routes on a TCP
        listener, or one without host and path, are refused naming the field."""
        vip, target, closed = (harness.free_port() for _ in range(3))
        path = "/v1/namespaces/%s/regionservices/routed" % NS
        routes = [{"pathPrefix": "/elsewhere/", "targetPort": closed},
                  {"host": "Other.Test", "targetPort": closed}]

        def body(name, routes, protocol="HTTP"):
            b = self.rs_body(1)
            b["metadata"]["name"] = name
            b["spec"]["template"]["process"]["command"][-1] = str(target)
            b["spec"]["loadBalancer"]["listeners"] = [
                {"port": vip, "protocol": protocol, "targetPort": target, "routes": routes}]
            return b
        for rts, proto, field in (
                (routes, "TCP", "spec.loadBalancer.listeners[0].routes"),
                ([{"targetPort": closed}], "HTTP", "spec.loadBalancer.listeners[0].routes[0]"),
                ([{"pathPrefix": "x", "targetPort": closed}], "HTTP",
                 "spec.loadBalancer.listeners[0].routes[0].pathPrefix")):
            status, out = self.api.call("POST", "/v1/namespaces/%s/regionservices" % NS,
                                        body("routedbad", rts, proto))
            self.assertEqual(status, 400, out)
            self.assertIn(field, json.dumps(out))
        status, out = self.api.call("POST", "/v1/namespaces/%s/regionservices" % NS,
                                    body("routed", routes))
        self.assertEqual(status, 202, out)
        route_pool = "photon.%s.routed.%d-%d" % (NS, vip, closed)

        def get(url_path, host=None):
            if self.api.call("GET", "/v1/namespaces/%s/loadbalancers/routed" % NS)[1].get(
                    "status", {}).get("phase") != "RUNNING":
                return 0, ""
            args = ["-H", "Host: " + host] if host else []
            out = subprocess.run(["curl", "-sS", "--max-time", "5", "-o", "-", "-w",
                                  "\n%{http_code}"] + args +
                                 ["http://127.0.0.1:%d%s" % (vip, url_path)],
                                 capture_output=True, text=True, timeout=10)
            who, _, code = out.stdout.rpartition("\n")
            return int(code or 0), who
        try:
            wait_until("200 from the replica at /", lambda: get("/")[0] == 200, 30)
            self.assertTrue(get("/")[1].startswith("routed-"))
            self.assertEqual(get("/elsewhere/x")[0], 503)  # routed to the closed port
            self.assertEqual(get("/", host="other.test:%d" % vip)[0], 503)
            self.assertEqual(get("/elsewhere")[0], 200)  # a prefix, not a substring
            self.assertIn(route_pool, [p["name"] for p in self.lb.state()["pools"]])
            # Routes removed: every request goes to the targetPort, the route's pool is gone.
            for _ in range(20):
                status, rs = self.api.call("GET", path)
                rs["spec"]["loadBalancer"]["listeners"][0]["routes"] = []
                status, out = self.api.call("PUT", path, rs)
                if status != 409:
                    break
            self.assertEqual(status, 200, out)
            wait_until("/elsewhere/x served by the replica", lambda: get("/elsewhere/x")[0] == 200,
                       15)
            wait_until("route pool removed", lambda: route_pool not in
                       [p["name"] for p in self.lb.state()["pools"]], 15)
        finally:
            self.api.call("DELETE", path)
            wait_until("routed LoadBalancer gone", lambda: self.api.call(
                "GET", "/v1/namespaces/%s/loadbalancers/routed" % NS)[0] == 404, 15)
            wait_until("routed replicas gone", lambda: not self.api.call(
                "GET", "/v1/namespaces/%s/computeinstances?labelSelector="
                "photon.io/regionservice=routed" % NS)[1].get("items"), 30)

    def test_6_scale_down_drains_the_leaving_replicas_connections(self):
        """A replica scaled away stays running while HAProxy drains it: a connection it holds
        through the VIP goes on answering from it and the instance exists (the LoadBalancer's
        status lists it as draining); closed, the replica is deleted; new connections reach
        the one that stays. Seen failing with the agent's wait removed (the connection was cut
        with its process)."""
        import socket
        vip, target = harness.free_port(), harness.free_port()
        name = "drain"
        path = "/v1/namespaces/%s/regionservices/%s" % (NS, name)
        b = self.rs_body(2)
        b["metadata"]["name"] = name
        b["spec"]["template"]["process"]["command"] = ["python3", "-c", LINE_MEMBER, str(target)]
        b["spec"]["loadBalancer"]["listeners"] = [
            {"port": vip, "protocol": "TCP", "targetPort": target}]
        status, body = self.api.call("POST", "/v1/namespaces/%s/regionservices" % NS, b)
        self.assertIn(status, (201, 202), body)
        socks = []
        try:
            pool = "photon.%s.%s.%d" % (NS, name, vip)

            def both_up():
                st, p = self.lb.api.call("GET", "/v1/pools/" + pool)
                ms = p.get("members", []) if st == 200 else []
                return len(ms) == 2 and all(m.get("status") == "UP" for m in ms)
            wait_until("two replicas UP in the pool", both_up, 60)

            def ask(sock):
                sock.sendall(b"?\n")
                return sock.makefile("rb").readline().decode().strip()
            by_replica = {}
            for _ in range(10):  # round robin: a connection held by each replica
                c = socket.create_connection(("127.0.0.1", vip), timeout=5)
                socks.append(c)
                by_replica.setdefault(ask(c), c)
                if len(by_replica) == 2:
                    break
            self.assertEqual(len(by_replica), 2, by_replica)
            self.scale(1, name)

            def leaving():
                st, got = self.api.call(
                    "GET", "/v1/namespaces/%s/computeinstances?labelSelector="
                    "photon.io/regionservice=%s" % (NS, name))
                items = got.get("items", []) if st == 200 else []
                for i in items:
                    if i["metadata"].get("deletionTimestamp"):
                        return i["metadata"]["name"]
                listed = {i["metadata"]["name"] for i in items}
                missing = [n for n in by_replica if n not in listed]
                return missing[0] if missing else None  # gone already: not drained
            gone = wait_until("a replica being deleted", leaving, 20)
            stays = next(n for n in by_replica if n != gone)

            def listed_draining():
                st, lb = self.api.call("GET", "/v1/namespaces/%s/loadbalancers/%s" % (NS, name))
                d = lb.get("status", {}).get("details", {}) if st == 200 else {}
                return "draining" in d.get("member." + gone, "")
            wait_until("%s listed as draining" % gone, listed_draining, 20)
            end = time.monotonic() + 1.5  # well inside the 8 s drain timeout
            while time.monotonic() < end:
                self.assertEqual(ask(by_replica[gone]), gone)
                self.assertEqual(ask(by_replica[stays]), stays)
                st, _ = self.api.call("GET", "/v1/namespaces/%s/computeinstances/%s" % (NS, gone))
                self.assertEqual(st, 200, "the leaving replica was deleted while draining")
            for c in socks:
                c.close()
            socks = []
            wait_until("%s deleted once drained" % gone, lambda: self.api.call(
                "GET", "/v1/namespaces/%s/computeinstances/%s" % (NS, gone))[0] == 404, 20)
            for _ in range(4):
                c = socket.create_connection(("127.0.0.1", vip), timeout=5)
                socks.append(c)
                self.assertEqual(ask(c), stays)
        finally:
            for c in socks:
                c.close()
            self.api.call("DELETE", path)
            wait_until("drain service gone", lambda: self.api.call("GET", path)[0] == 404, 60)

    def test_3_without_fiberlb_a_load_balancer_is_refused(self):
        port = harness.free_port()
        data = os.path.join(self.tmp, "server-nolb")
        config = os.path.join(self.tmp, "photon-server-nolb.yaml")
        with open(config, "w") as f:
            f.write("provider_resync_s: 2\n")
        d = start_photon_server(SERVER, config, data, port, self.tmp)
        try:
            with open(os.path.join(data, "admin.token")) as f:
                api = Http("http://127.0.0.1:%d" % port, f.read().strip())
            status, body = api.call("POST", "/v1/namespaces/%s/regionservices" % NS,
                                    self.rs_body(1))
            self.assertEqual(status, 400, body)
            self.assertIn("no load balancer provider is configured", json.dumps(body))
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
