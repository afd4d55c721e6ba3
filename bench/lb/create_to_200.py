#!/usr/bin/env python3
"""Time from `photon create` of a RegionService with a load balancer to the first 200 OK through
its VIP (target: <= 1 s after its first replica is RUNNING).

Real parts, as in tests/server/lb_provider_test.py: photon-server with the fiberlb provider,
fiberlb running HAProxy, a photon-agent in network mode `shared` running the replicas as process
instances that answer HTTP. Each round creates a RegionService (1 replica, an HTTP listener, a
TCP health check every HEALTH_MS with rise 1), then polls as fast as it can, recording when

  running  the first replica is RUNNING (photon-server's API),
  pool     fiberlb's pool holds it (the provider reacted to RUNNING),
  up       HAProxy reports it UP (its first health check passed),
  ok       a GET through the VIP answers 200,

then deletes the RegionService and waits until everything is gone. Prints each round and the
medians, with the load average (the machine is shared).

usage: bench/lb/create_to_200.py [BUILD_DIR=build] [ROUNDS=5] [HEALTH_MS=300]"""
import http.client
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build")
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
HEALTH_MS = int(sys.argv[3]) if len(sys.argv) > 3 else 300
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
sys.argv[1:] = [BUILD]  # lb_provider_test reads the build directory from argv
import lb_provider_test as t  # noqa: E402  (the test's daemons and replica program)

NS = "default"


def get_200(port):
    """True when GET / on 127.0.0.1:port answers 200 (one short-lived connection)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        c.request("GET", "/")
        return c.getresponse().status == 200
    except OSError:
        return False
    finally:
        c.close()


class Bed:
    """fiberlb + photon-server + photon-agent, started once for every round."""

    def __init__(self):
        t.LoadBalancerProviderTest.setUpClass()
        self.c = t.LoadBalancerProviderTest

    def close(self):
        for d in reversed(self.c.procs):
            d.stop()

    def round(self, i):
        c = self.c
        name = "bench%d" % i
        vip, target = t.harness.free_port(), t.harness.free_port()
        body = {"kind": "RegionService", "metadata": {"name": name, "namespace": NS},
                "spec": {"replicas": 1,
                         "template": {"process": {"command": ["python3", "-c", t.MEMBER,
                                                              str(target)]},
                                      "resources": {"vcpu": 1, "memoryMb": "64"},
                                      "security": {"privileged": True}},
                         "loadBalancer": {
                             "type": "L7",
                             "listeners": [{"port": vip, "protocol": "HTTP",
                                            "targetPort": target}],
                             "healthCheck": {"type": "tcp", "intervalMs": HEALTH_MS,
                                             "rise": 1, "fall": 1}}}}
        pool_path = "/v1/pools/photon.%s.%s.%d" % (NS, name, vip)
        lb_path = "/v1/namespaces/%s/loadbalancers/%s" % (NS, name)
        sel = ("/v1/namespaces/%s/computeinstances?labelSelector=photon.io/regionservice=%s"
               % (NS, name))
        t0 = time.monotonic()
        status, out = c.api.call("POST", "/v1/namespaces/%s/regionservices" % NS, body)
        assert status == 202, out
        marks = {}
        deadline = t0 + 60
        while "ok" not in marks and time.monotonic() < deadline:
            now = time.monotonic
            if "running" not in marks:
                status, items = c.api.call("GET", sel)
                if status == 200 and any(x.get("status", {}).get("phase") == "RUNNING"
                                         for x in items.get("items", [])):
                    marks["running"] = now()
            if "up" not in marks:
                status, pool = c.lb.api.call("GET", pool_path)
                members = pool.get("members", []) if status == 200 else []
                if members and "pool" not in marks:
                    marks["pool"] = now()
                if any(m.get("status", "").startswith("UP") for m in members):
                    marks["up"] = now()
            # Only once the listener is bound (LoadBalancer RUNNING): a connect to a free port
            # in the ephemeral range can pick that port as its source and connect to itself.
            if "bound" not in marks:
                status, lb = c.api.call("GET", lb_path)
                if status == 200 and lb.get("status", {}).get("phase") == "RUNNING":
                    marks["bound"] = now()
            if "bound" in marks and get_200(vip):
                marks["ok"] = now()
        assert "ok" in marks, "round %d: no 200 within 60 s: %r" % (i, marks)
        for k in ("running", "pool", "up"):
            marks.setdefault(k, marks["ok"])
        status, out = c.api.call("DELETE", "/v1/namespaces/%s/regionservices/%s" % (NS, name))
        assert status == 202, out
        t.wait_until("round %d cleaned up" % i, lambda: c.api.call("GET", lb_path)[0] == 404
                     and not c.api.call("GET", sel)[1].get("items"), 30)
        return {k: v - t0 for k, v in marks.items()}


def main():
    print("load average before: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    bed = Bed()
    rows = []
    try:
        for i in range(1, ROUNDS + 1):
            r = bed.round(i)
            rows.append(r)
            print("round %d: create -> RUNNING %.3f s, in pool %.3f s, UP %.3f s, first 200 %.3f s"
                  " (%.3f s after RUNNING)" % (i, r["running"], r["pool"], r["up"], r["ok"],
                                               r["ok"] - r["running"]))
    finally:
        bed.close()
    med = {k: statistics.median(r[k] for r in rows) for k in ("running", "pool", "up", "ok")}
    after = statistics.median(r["ok"] - r["running"] for r in rows)
    print("median of %d: create -> RUNNING %.3f s, in pool %.3f s, UP %.3f s, first 200 %.3f s;"
          " RUNNING -> first 200 %.3f s (target <= 1 s; health check every %d ms, rise 1)"
          % (len(rows), med["running"], med["pool"], med["up"], med["ok"], after, HEALTH_MS))
    print("load average after: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
