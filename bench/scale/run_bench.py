#!/usr/bin/env python3
"""Control plane at scale: a real photon-server, a photon-hollow fleet, photon-scale-load.

For each fleet size in --nodes (default 1000,10000):
  heartbeats  all nodes heartbeating at --heartbeat-seconds (the agent's default, 5): time to
              all READY, then over --window seconds the server's CPU and RSS, the store's
              write rate, the hollow fleet's own CPU, heartbeat round trip (the write that
              keeps a node READY) p50/p99.
With the first size only (1,000 nodes by default):
  fanout      --instances-per-node instances per node, then --change-rate metadata changes/s
              spread over them for --window s: delivery (change sent -> its node's watch)
              p50/p99, the PUT's share of it (sent -> answered), events about other nodes'
              instances, server CPU.
  churn       --churn-rate creates+deletes/s over a population of 1,000: create -> placed p50/p99.
  bulk        --bulk instances created at once: first create -> all RUNNING, then deleted.
Every step also reports the group commits made meanwhile (count, mean, how many took over 50
and 250 ms: fsync stalls on a disk shared with other work) and the load average.
Prints one line of JSON per step, then a summary. 1,000 instances through 3 real agents:
bench/agent/run_bench.py.
  bench/scale/run_bench.py [--nodes 1000,10000] [--window 30] [--bulk 10000]
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("PHOTON_BUILD_DIR", os.path.join(ROOT, "build"))
SERVER = os.path.join(BUILD, "src/server/photon-server")
HOLLOW = os.path.join(BUILD, "src/agent/hollow/photon-hollow")
LOAD = os.path.join(BUILD, "bench/scale/photon-scale-load")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def more_files():
    # 10,000 watches are 10,000 sockets on each side.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def get(url, token=None, timeout=30):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def metric(base, name):
    total = 0.0
    for line in get(base + "/metrics").splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, value = line.rsplit(" ", 1)
            if head == name or head.startswith(name + "{"):
                total += float(value)
    return total


def histogram(base, name):
    """{le: cumulative count} of a histogram without labels, with "sum" and "count"."""
    out = {}
    for line in get(base + "/metrics").splitlines():
        if line.startswith(name + "_bucket{le=\""):
            out[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum "):
            out["sum"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_count "):
            out["count"] = float(line.rsplit(" ", 1)[1])
    return out


def commit_figures(before, after):
    """Group commits (one fsync each) between two histogram reads: how many, their mean, and
    how many took longer than 50 and 250 ms (a disk shared with other work stalls fsync)."""
    n = after.get("count", 0) - before.get("count", 0)
    d = {k: after[k] - before.get(k, 0) for k in after}
    return {"commits": int(n),
            "commitMeanMs": round(1000 * d.get("sum", 0) / n, 2) if n else None,
            "commitsOver50Ms": int(n - d.get("0.05", n)),
            "commitsOver250Ms": int(n - d.get("0.25", n))}


class Rig:
    """A server and a hollow fleet in a temp dir; killed on exit."""

    def __init__(self, nodes, args):
        self.dir = tempfile.mkdtemp(prefix="photon-scale-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.procs = []
        self.server = self.spawn([SERVER, "--data-dir", f"{self.dir}/server", "--listen",
                                  f"127.0.0.1:{self.port}", "--grpc-listen",
                                  f"127.0.0.1:{free_port()}", "--log-level", "warn"], "server")
        deadline = time.monotonic() + 30
        while not os.path.exists(f"{self.dir}/server/admin.token"):
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        while True:
            try:
                get(self.base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        self.token = open(f"{self.dir}/server/admin.token").read().strip()
        self.hollow_port = free_port()
        t0 = time.monotonic()
        self.hollow = self.spawn([HOLLOW, "--server", self.base, "--join-token",
                                  f"{self.dir}/server/join.token", "--data-dir",
                                  f"{self.dir}/hollow", "--nodes", str(nodes),
                                  "--heartbeat-seconds", str(args.heartbeat_seconds),
                                  "--vcpu", "64", "--memory-mb", "262144",
                                  "--threads", str(args.hollow_threads),
                                  "--connections", str(args.hollow_connections),
                                  "--listen", f"127.0.0.1:{self.hollow_port}"], "hollow")
        ready = 0
        while ready < nodes:
            if time.monotonic() - t0 > 600:
                raise RuntimeError(f"only {ready}/{nodes} nodes READY")
            time.sleep(0.5)
            try:
                ready = self.stats()["nodesReady"]
            except OSError:
                pass  # the fleet is still starting
        self.ready_s = time.monotonic() - t0

    def spawn(self, argv, name):
        p = subprocess.Popen(argv, stdout=open(f"{self.dir}/{name}.log", "w"),
                             stderr=subprocess.STDOUT, preexec_fn=more_files)
        self.procs.append(p)
        return p

    def stats(self, reset=False):
        return json.loads(get(f"http://127.0.0.1:{self.hollow_port}/stats" +
                              ("?reset=1" if reset else "")))

    def load(self, *argv, timeout=900):
        out = subprocess.run([LOAD, "--server", self.base, "--token-file",
                              f"{self.dir}/server/admin.token", *argv], capture_output=True,
                             text=True, timeout=timeout, preexec_fn=more_files)
        if out.returncode != 0:
            raise RuntimeError(f"scale-load {argv}: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def measure(self, seconds, during=None):
        """CPU % of server and fleet, store writes/s over `seconds` (or while `during` runs)."""
        s0, h0 = cpu_seconds(self.server.pid), cpu_seconds(self.hollow.pid)
        w0 = metric(self.base, "photon_store_sqlite_write_requests_total")
        c0 = histogram(self.base, "photon_store_sqlite_commit_seconds")
        t0 = time.monotonic()
        result = during() if during else time.sleep(seconds)
        dt = time.monotonic() - t0
        return result, {
            "serverCpuPct": round(100 * (cpu_seconds(self.server.pid) - s0) / dt, 1),
            "hollowCpuPct": round(100 * (cpu_seconds(self.hollow.pid) - h0) / dt, 1),
            "storeWritesPerS": round(
                (metric(self.base, "photon_store_sqlite_write_requests_total") - w0) / dt, 1),
            "serverRssMb": round(rss_mb(self.server.pid)),
            "hollowRssMb": round(rss_mb(self.hollow.pid)),
            **commit_figures(c0, histogram(self.base, "photon_store_sqlite_commit_seconds")),
            "loadAverage": round(os.getloadavg()[0], 2),
            "seconds": round(dt, 1)}

    def close(self):
        for p in self.procs[::-1]:
            p.send_signal(signal.SIGKILL)
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def report(step, figures):
    print(json.dumps({"step": step, **figures}), flush=True)
    return figures


def heartbeats(rig, nodes, args):
    rig.stats(reset=True)
    _, m = rig.measure(args.window)
    hb = rig.stats()["heartbeatMs"]
    return report("heartbeats", {"nodes": nodes, "allReadyS": round(rig.ready_s, 1),
                                 "heartbeatP50Ms": hb.get("p50"), "heartbeatP99Ms": hb.get("p99"),
                                 "heartbeatsPerS": round(hb["count"] / m["seconds"], 1), **m})


def fanout(rig, nodes, args):
    count = nodes * args.instances_per_node
    rig.load("--prefix", "f", "create", "--count", str(count))
    rig.stats(reset=True)
    before = rig.stats()["foreignEvents"]
    r, m = rig.measure(0, lambda: rig.load("--prefix", "f", "--connections", "64", "update", "--rate",
                                           str(args.change_rate), "--seconds", str(args.window),
                                           "--count", str(count)))
    time.sleep(2)  # deliveries still in flight
    st = rig.stats()
    d = st["deliveryMs"]
    return report("fanout", {"nodes": nodes, "instances": count, "changesPerS": r["achievedPerSecond"],
                             "deliveries": d["count"], "deliveryP50Ms": d.get("p50"),
                             "deliveryP99Ms": d.get("p99"), "deliveryMaxMs": d.get("max"),
                             "updateP50Ms": r["updateMs"].get("p50"),
                             "updateP99Ms": r["updateMs"].get("p99"),
                             "foreignEvents": st["foreignEvents"] - before, **m})


def churn(rig, args):
    r, m = rig.measure(0, lambda: rig.load("--prefix", "c", "churn", "--rate",
                                           str(args.churn_rate), "--seconds", str(args.window),
                                           "--population", "1000"))
    p = r["createToPlacedMs"]
    return report("churn", {"opsPerS": args.churn_rate, "creates": r["creates"],
                            "unplaced": r["unplaced"], "placementP50Ms": p.get("p50"),
                            "placementP99Ms": p.get("p99"), "placementMaxMs": p.get("max"), **m})


def post(base, path, token, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def bulk_subnet(rig):
    """A /16 VPC and subnet for the bulk: the namespace's default subnet, a /20, holds 4,091."""
    with open(f"{rig.dir}/server/admin.token") as f:
        token = f.read().strip()
    ns = "/v1/namespaces/default"
    post(rig.base, ns + "/vpcs", token, {"metadata": {"name": "bulk"},
                                         "spec": {"cidrBlock": "10.128.0.0/16"}})
    post(rig.base, ns + "/subnets", token, {"metadata": {"name": "bulk"},
                                            "spec": {"vpcId": "bulk", "cidrBlock": "10.128.0.0/16"}})
    return "bulk/bulk"


def bulk(rig, nodes, args):
    subnet = bulk_subnet(rig)
    r, m = rig.measure(0, lambda: rig.load("--prefix", "b", "--connections", "8", "--subnet",
                                           subnet, "create",
                                           "--count", str(args.bulk), "--delete"))
    return report("bulk", {"nodes": nodes, "instances": args.bulk, "acceptedS": r["acceptedS"],
                           "allPlacedS": r["allPlacedS"], "allRunningS": r["allRunningS"],
                           "perSecond": round(r["perSecond"]),
                           "createToRunningP99Ms": r["createToRunningMs"].get("p99"),
                           "deleteAllS": r.get("deleteAllS"), **m})


def commits(r):
    return (f"{r['commits']} commits, mean {r['commitMeanMs']} ms, {r['commitsOver50Ms']} over "
            f"50 ms, {r['commitsOver250Ms']} over 250 ms; load average {r['loadAverage']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", default="1000,10000")
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--heartbeat-seconds", type=int, default=5)
    ap.add_argument("--hollow-threads", type=int, default=2)
    ap.add_argument("--hollow-connections", type=int, default=32,
                    help="keep-alive connections per fleet loop (each call waits for a commit)")
    ap.add_argument("--instances-per-node", type=int, default=1)
    ap.add_argument("--change-rate", type=int, default=1000)
    ap.add_argument("--churn-rate", type=int, default=20)
    ap.add_argument("--bulk", type=int, default=10000)
    ap.add_argument("--steps", default="heartbeats,fanout,churn,bulk")
    args = ap.parse_args()
    steps = args.steps.split(",")
    sizes = [int(x) for x in args.nodes.split(",")]
    results = []
    for i, nodes in enumerate(sizes):
        rig = Rig(nodes, args)
        try:
            if "heartbeats" in steps:
                results.append(("heartbeats", heartbeats(rig, nodes, args)))
            if i == 0:
                if "fanout" in steps:
                    results.append(("fanout", fanout(rig, nodes, args)))
                if "churn" in steps:
                    results.append(("churn", churn(rig, args)))
                if "bulk" in steps:
                    results.append(("bulk", bulk(rig, nodes, args)))
        finally:
            rig.close()
    print("\nsummary")
    for step, r in results:
        if step == "heartbeats":
            print(f"  {r['nodes']:>6} hollow nodes heartbeating every {args.heartbeat_seconds} s: "
                  f"all READY in {r['allReadyS']} s; server CPU {r['serverCpuPct']} %, "
                  f"RSS {r['serverRssMb']} MiB, store {r['storeWritesPerS']} writes/s, "
                  f"heartbeat p50 {r['heartbeatP50Ms']:.1f} ms p99 {r['heartbeatP99Ms']:.1f} ms "
                  f"(fleet CPU {r['hollowCpuPct']} %)")
        elif step == "fanout":
            print(f"  {r['changesPerS']:.0f} changes/s over {r['nodes']} nodes' own watches: "
                  f"delivery p50 {r['deliveryP50Ms']:.1f} ms p99 {r['deliveryP99Ms']:.1f} ms "
                  f"(the PUT's share: p50 {r['updateP50Ms']:.1f} ms p99 {r['updateP99Ms']:.1f} ms), "
                  f"{r['foreignEvents']} events about other nodes' instances, "
                  f"server CPU {r['serverCpuPct']} %; {commits(r)}")
        elif step == "churn":
            print(f"  churn {r['opsPerS']} creates+deletes/s: placement p50 "
                  f"{r['placementP50Ms']:.1f} ms p99 {r['placementP99Ms']:.1f} ms "
                  f"({r['unplaced']} unplaced), server CPU {r['serverCpuPct']} %; {commits(r)}")
        elif step == "bulk":
            print(f"  {r['instances']} instances on {r['nodes']} hollow nodes: first create -> "
                  f"all RUNNING {r['allRunningS']:.2f} s ({r['perSecond']}/s), all placed "
                  f"{r['allPlacedS']:.2f} s, delete all {r['deleteAllS']:.2f} s")


if __name__ == "__main__":
    main()
