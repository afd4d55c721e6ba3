#!/usr/bin/env python3
"""A GlobalService over a real RegionService: photon-server with the flashdns, fiberlb and gslb
providers, a real fiberlb with HAProxy, a real photon-agent (network mode `shared`) running the
replica, real dig.

Region 1 is RegionService `web` (one replica serving HTTP) behind its LoadBalancer, whose VIP is
the fiberlb provider's listen_address 127.0.0.4; region 2 is a TCP listener on 127.0.0.3 (a VIP
given by address, as another cluster's). Asserted: the GlobalService's name answers both VIPs;
when region 1's replica stops, its VIP leaves the answer although HAProxy still accepts
connections on it (the LoadBalancer has no member UP), and comes back when the replica runs
again; deleting the GlobalService removes its records. Every wait is bounded; every process is
stopped at the end.

usage: gslb_regionservice_test.py BUILD_DIR"""
import json
import os
import socket
import sys
import time
import unittest
import urllib.request

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "flashdns"))
import harness  # noqa: E402
from provider_harness import Http, start_photon_server, wait_until  # noqa: E402

SERVER = os.path.join(BUILD, "src/server/photon-server")
AGENT = os.path.join(BUILD, "src/agent/photon-agent")
FIBERLB = os.path.join(BUILD, "src/fiberlb/fiberlb")
FLASHDNS = os.path.join(BUILD, "src/flashdns/flashdns")
NS, RS, NAME = "default", "web", "web.gslb.test"
VIP1, VIP2 = "127.0.0.4", "127.0.0.3"

MEMBER = r"""
import http.server, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""



class GslbRegionServiceTest(unittest.TestCase):
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
        cls.tmp = harness.make_tmp("photon-gslb-rs-")
        os.makedirs(os.path.join(cls.tmp, "dns"))
        cls.dns = harness.FlashDns(FLASHDNS, [], workdir=os.path.join(cls.tmp, "dns"),
                                   listen=("127.0.0.1",))
        cls.dns.start(wait_name="nothing.test")
        cls.procs.append(cls.dns)
        lb_api = harness.free_port()
        lb_data = os.path.join(cls.tmp, "fiberlb")
        lb_config = os.path.join(cls.tmp, "fiberlb.yaml")
        with open(lb_config, "w") as f:
            json.dump({"api": "127.0.0.1:%d" % lb_api, "data_dir": lb_data}, f)
        cls.lb = harness.Daemon([FIBERLB, "--config", lb_config],
                                os.path.join(cls.tmp, "fiberlb.log"))
        cls.procs.append(cls.lb)

        def lb_healthy():
            if cls.lb.proc.poll() is not None:
                raise AssertionError("fiberlb exited:\n" + cls.lb.output())
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % lb_api, timeout=1)
                return True
            except OSError:
                return False
        wait_until("fiberlb /healthz", lb_healthy, 20)
        cls.vip_port = harness.free_port()
        cls.target_port = harness.free_port()
        cls.region2 = harness.TcpRegion(VIP2, cls.vip_port)
        token = os.path.join(cls.dns.data_dir, "api.token")
        config = os.path.join(cls.tmp, "photon-server.yaml")
        with open(config, "w") as f:
            f.write("provider_resync_s: 2\n"
                    "providers:\n"
                    "  - driver: flashdns\n    endpoint: http://127.0.0.1:%d\n"
                    "    token_file: %s\n"
                    "  - driver: gslb\n    endpoint: http://127.0.0.1:%d\n"
                    "    token_file: %s\n"
                    "  - driver: fiberlb\n    endpoint: http://127.0.0.1:%d\n"
                    "    token_file: %s\n    listen_address: %s\n"
                    "    drain_timeout_ms: 500\n" % (
                        cls.dns.api_port, token, cls.dns.api_port, token, lb_api,
                        os.path.join(lb_data, "api.token"), VIP1))
        cls.port = harness.free_port()
        cls.data = os.path.join(cls.tmp, "server")
        cls.server = start_photon_server(SERVER, config, cls.data, cls.port, cls.tmp)
        cls.procs.append(cls.server)
        with open(os.path.join(cls.data, "admin.token")) as f:
            cls.api = Http("http://127.0.0.1:%d" % cls.port, f.read().strip())
        cls.agent = harness.Daemon(
            [AGENT, "--server", "127.0.0.1:%d" % cls.port, "--token-file",
             os.path.join(cls.data, "join.token"), "--data-dir", os.path.join(cls.tmp, "agent"),
             "--name", "gslb-n1", "--heartbeat-seconds", "1", "--resync-seconds", "1",
             "--vcpu", "16", "--memory-mb", "8192", "--disk-gb", "20",
             "--network-mode", "shared"],
            os.path.join(cls.tmp, "agent.log"))
        cls.procs.append(cls.agent)
        wait_until("node gslb-n1", lambda: cls.api.call(
            "GET", "/v1/namespaces/system/nodes/gslb-n1")[0] == 200, 20)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.api.call("DELETE", "/v1/namespaces/%s/globalservices/%s" % (NS, RS))
            cls.api.call("DELETE", "/v1/namespaces/%s/regionservices/%s" % (NS, RS))
            wait_until("replicas gone", lambda: not cls.instances(), 30)
        finally:
            cls.region2.stop()
            for d in reversed(cls.procs):
                d.stop()

    @classmethod
    def instances(cls):
        status, body = cls.api.call(
            "GET", "/v1/namespaces/%s/computeinstances?labelSelector=photon.io/regionservice=%s"
            % (NS, RS))
        assert status == 200, body
        return body.get("items", [])

    def answers(self):
        return sorted(a[4] for a in self.dns.dig(NAME, "A")["answer"] if a[3] == "A")

    def gs_status(self):
        code, body = self.api.call("GET", "/v1/namespaces/%s/globalservices/%s" % (NS, RS))
        return body.get("status", {}) if code == 200 else {}

    def action(self, name, action):
        status, body = self.api.call(
            "POST", "/v1/namespaces/%s/computeinstances/%s/actions/%s" % (NS, name, action), {})
        self.assertEqual(status, 202, body)

    def test_regionservice_member_fails_and_recovers(self):
        for doc, plural in (
                ({"kind": "DnsZone", "metadata": {"name": "gslb", "namespace": NS},
                  "spec": {"name": "gslb.test."}}, "dnszones"),
                ({"kind": "RegionService", "metadata": {"name": RS, "namespace": NS},
                  "spec": {"replicas": 1,
                           "template": {"process": {"command": ["python3", "-c", MEMBER,
                                                                str(self.target_port)]},
                                        "resources": {"vcpu": 1, "memoryMb": "64"},
                                        "security": {"privileged": True}},
                           "loadBalancer": {
                               "type": "L7",
                               "listeners": [{"port": self.vip_port, "protocol": "HTTP",
                                              "targetPort": self.target_port}],
                               "healthCheck": {"type": "tcp", "intervalMs": 300, "rise": 1,
                                               "fall": 1}}}}, "regionservices"),
                ({"kind": "GlobalService", "metadata": {"name": RS, "namespace": NS},
                  "spec": {"zone": "gslb", "name": "web", "ttl": 2,
                           "members": [{"regionService": RS},
                                       {"address": VIP2, "region": "r2"}],
                           "healthCheck": {"port": self.vip_port, "intervalMs": 300,
                                           "timeoutMs": 200, "fall": 2, "rise": 1}}},
                 "globalservices")):
            status, body = self.api.call("POST", "/v1/namespaces/%s/%s" % (NS, plural), doc)
            self.assertEqual(status, 202, body)
        wait_until("both regions answered", lambda: self.answers() == [VIP2, VIP1], 60)
        self.assertIn(VIP1 + ":%d" % self.vip_port, self.gs_status()["details"]["member.web"])
        replica = self.instances()[0]["metadata"]["name"]

        # Region 1's member fails: its VIP leaves the answer, although HAProxy still listens.
        t0 = time.time()
        self.action(replica, "stop")
        wait_until("region 1's VIP out of the answer", lambda: self.answers() == [VIP2], 30)
        print("RegionService member stopped -> its VIP out of the answer: %.2f s" %
              (time.time() - t0), file=sys.stderr)
        with socket.create_connection((VIP1, self.vip_port), timeout=2):
            pass  # the VIP itself still accepts connections: only the LB's state tells
        self.assertIn("no member of its LoadBalancer is UP",
                      self.gs_status()["details"]["member.web"])
        # Recovery brings it back.
        self.action(replica, "start")
        wait_until("region 1's VIP back", lambda: self.answers() == [VIP2, VIP1], 60)

        status, body = self.api.call("DELETE", "/v1/namespaces/%s/globalservices/%s" % (NS, RS))
        self.assertIn(status, (200, 202), body)
        wait_until("records gone", lambda: self.answers() == [], 10)


if __name__ == "__main__":
    unittest.main(verbosity=2)
