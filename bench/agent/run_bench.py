#!/usr/bin/env python3
"""photon-agent benchmark: N `process` instances (small sleeping processes) through 3 real
agents and the real scheduler.

Prints the time from the first create to all RUNNING, the time to delete them all, and the
CPU the server and each agent use while idle afterwards (from /proc/<pid>/stat), as medians
over ROUNDS rounds. Stage by stage, from a watch of the instances (each instance's first
event with an agentId, with phase CREATING, with phase RUNNING; times from the first create,
when the last instance reached it, and per instance p50/p99 of the step before it) and from
the agents' /metrics (time spent per reconcile, provider Start, status write, summed over the
3 agents' workers, reconciles that changed nothing, own status writes' events skipped), the
server's time per create against the clients' round trip and the group commits the creates
took, and the CPU the server and the agents used meanwhile.
  bench/agent/run_bench.py [--instances 1000] [--rounds 1] [--idle-seconds 20] [--workers 8]
                           [--clients 8]
Needs root (cgroups) and build/src/{server/photon-server,agent/photon-agent}.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("PHOTON_BUILD_DIR", os.path.join(ROOT, "build"))
SERVER = os.path.join(BUILD, "src/server/photon-server")
AGENT = os.path.join(BUILD, "src/agent/photon-agent")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Api:
    def __init__(self, base, token):
        self.base, self.token = base, token

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if data:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def list_all(self, path):
        items, cont = [], ""
        while True:
            q = path + "?limit=500" + ("&continue=" + urllib.request.quote(cont) if cont else "")
            status, page = self.call("GET", q)
            if status != 200:
                raise RuntimeError(f"list {path}: {status} {page}")
            items += page.get("items", [])
            cont = page.get("continue") or ""
            if not cont:
                return items


class StageWatch:
    """Watches the namespace's instances and notes, per name, when it was first seen with an
    agentId (placed), in phase CREATING and in phase RUNNING (monotonic seconds)."""

    STAGES = ("placed", "creating", "running")

    def __init__(self, api, path):
        self.seen = {k: {} for k in self.STAGES}
        self.lock = threading.Lock()
        status, page = api.call("GET", path + "?limit=1")
        rv = page.get("resourceVersion", "0") if status == 200 else "0"
        req = urllib.request.Request(f"{api.base}{path}?watch=true&resourceVersion={rv}")
        req.add_header("Authorization", "Bearer " + api.token)
        self.stream = urllib.request.urlopen(req, timeout=900)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for line in self.stream:
                now = time.monotonic()
                line = line.strip()
                if not line:
                    continue
                obj = json.loads(line).get("object", {})
                name = obj.get("metadata", {}).get("name")
                phase = obj.get("status", {}).get("phase")
                with self.lock:
                    if obj.get("metadata", {}).get("agentId"):
                        self.seen["placed"].setdefault(name, now)
                    if phase == "CREATING":
                        self.seen["creating"].setdefault(name, now)
                    if phase == "RUNNING":
                        self.seen["running"].setdefault(name, now)
        except (OSError, ValueError, AttributeError):
            pass  # closed by close() (AttributeError: urllib's read of a closed response)

    def close(self):
        self.stream.close()

    def stages(self, t0):
        """Per stage: when the last instance reached it (from t0) and, per instance, p50/p99 of
        the time from the stage before (create for 'placed'; a start that skipped CREATING
        counts from 'placed')."""
        with self.lock:
            seen = {k: dict(v) for k, v in self.seen.items()}
        out = {}
        prev = {}
        for stage in self.STAGES:
            times = seen[stage]
            steps = sorted(t - prev.get(n, t0) for n, t in times.items())
            out[stage] = {
                "n": len(times),
                "last_s": round(max(times.values()) - t0, 3) if times else None,
                "step_p50_s": round(steps[len(steps) // 2], 3) if steps else None,
                "step_p99_s": round(steps[int(len(steps) * 0.99)], 3) if steps else None,
            }
            merged = dict(prev)
            merged.update(times)
            prev = merged
        return out


AGENT_METRICS = {
    "reconcile": "photon_agent_reconcile_seconds",
    "provider_start": "photon_agent_provider_start_seconds",
    "status_write": "photon_agent_status_write_seconds",
}


def agent_metrics(ports):
    """Sums over the agents: count and total seconds of each AGENT_METRICS histogram."""
    out = {k: {"count": 0, "sum_s": 0.0} for k in AGENT_METRICS}
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        for line in text.splitlines():
            for k, name in AGENT_METRICS.items():
                if line.startswith(name + "_sum "):
                    out[k]["sum_s"] += float(line.split()[1])
                elif line.startswith(name + "_count "):
                    out[k]["count"] += int(line.split()[1])
        for line in text.splitlines():
            for counter, key in (("photon_agent_noop_reconciles_total", "noop_reconciles"),
                                 ("photon_agent_own_write_events_total", "own_write_events")):
                if line.startswith(counter + " "):
                    out[key] = out.get(key, 0) + int(float(line.split()[1]))
            if line.startswith("photon_agent_status_writes_total "):
                out["status_writes_accepted"] = out.get("status_writes_accepted", 0) + int(
                    float(line.split()[1]))
    for k in AGENT_METRICS:
        out[k]["sum_s"] = round(out[k]["sum_s"], 2)
    return out


SERVER_METRICS = {
    "post_s": 'photon_http_request_duration_seconds_sum{method="POST"}',
    "posts": 'photon_http_request_duration_seconds_count{method="POST"}',
    "commits": "photon_store_sqlite_batch_requests_count",
    "committed_requests": "photon_store_sqlite_batch_requests_sum",
}


def server_metrics(api):
    """The server's POST time (request read -> answer sent) and group commits so far."""
    req = urllib.request.Request(api.base + "/metrics")
    req.add_header("Authorization", "Bearer " + api.token)
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    out = {k: 0.0 for k in SERVER_METRICS}
    for line in text.splitlines():
        for k, name in SERVER_METRICS.items():
            if line.startswith(name + " "):
                out[k] = float(line.split()[1])
    return out


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def sweep_cgroups(node):
    for h in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", h, "photon", node)
        if not os.path.isdir(base):
            continue
        for dirpath, dirs, _ in sorted(os.walk(base), key=lambda w: -w[0].count("/")):
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
            time.sleep(0.01)
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def one_round(n, idle_seconds, workdir, workers, clients):
    procs = []
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([SERVER, "--data-dir", f"{workdir}/server", "--listen",
                               f"127.0.0.1:{port}", "--grpc-listen", f"127.0.0.1:{free_port()}"],
                              stdout=open(f"{workdir}/server.log", "w"), stderr=subprocess.STDOUT)
    procs.append(server)
    nodes = [f"bench{os.getpid() % 10000}-{i}" for i in range(3)]
    try:
        for _ in range(100):
            if os.path.exists(f"{workdir}/server/admin.token"):
                break
            time.sleep(0.1)
        time.sleep(0.3)
        token = open(f"{workdir}/server/admin.token").read().strip()
        api = Api(base, token)
        agents = []
        metric_ports = [free_port() for _ in nodes]
        for i, node in enumerate(nodes):
            agents.append(subprocess.Popen(
                [AGENT, "--server", f"127.0.0.1:{port}", "--token-file",
                 f"{workdir}/server/join.token", "--data-dir", f"{workdir}/agent-{node}",
                 "--name", node, "--labels", f"zone=z{i}", "--vcpu", "1000",
                 "--memory-mb", "1000000", "--log-level", "warn", "--workers", str(workers),
                 "--network-mode", "shared", "--listen", f"127.0.0.1:{metric_ports[i]}"],
                stdout=open(f"{workdir}/agent-{node}.log", "w"), stderr=subprocess.STDOUT))
        procs += agents
        for _ in range(200):
            ready = [x for x in api.list_all("/v1/namespaces/system/nodes")
                     if x.get("nodeStatus", {}).get("condition") == "READY"]
            if len(ready) == 3:
                break
            time.sleep(0.1)

        def create(i):
            body = {"metadata": {"name": f"p{i:05d}"},
                    "spec": {"process": {"command": ["sleep", "100000"]},
                             "resources": {"vcpu": 1, "memoryMb": "16"}}}
            status, r = api.call("POST", "/v1/namespaces/default/computeinstances", body)
            if status != 202:
                raise RuntimeError(f"create: {status} {r}")

        watch = StageWatch(api, "/v1/namespaces/default/computeinstances")
        busy_pids = {"server": server.pid, "agents": [a.pid for a in agents]}
        cpu0 = {"server": cpu_ticks(server.pid), "agents": sum(cpu_ticks(a.pid) for a in agents)}
        m0 = server_metrics(api)
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            list(pool.map(create, range(n)))
        t_created = time.monotonic() - t0
        m1 = server_metrics(api)
        posts = max(m1["posts"] - m0["posts"], 1)
        commits = max(m1["commits"] - m0["commits"], 1)
        # Where the create stage goes: the server's own time per create (parse, checks, plan,
        # group commit, answer) against the client's round trip (clients / rate).
        create_stage = {"server_ms_per_create": round(1000 * (m1["post_s"] - m0["post_s"]) / posts, 2),
                        "round_trip_ms": round(1000 * t_created * clients / n, 2),
                        "commits": int(commits),
                        "requests_per_commit": round((m1["committed_requests"] - m0["committed_requests"]) / commits, 1)}
        t_placed = None
        while True:
            items = api.list_all("/v1/namespaces/default/computeinstances")
            running = sum(1 for x in items if x.get("status", {}).get("phase") == "RUNNING")
            placed = sum(1 for x in items if x["metadata"].get("agentId"))
            if t_placed is None and placed == n:
                t_placed = time.monotonic() - t0
            if running == n:
                break
            if time.monotonic() - t0 > 900:
                raise RuntimeError(f"only {running}/{n} RUNNING after 900 s")
            time.sleep(0.2)
        t_running = time.monotonic() - t0
        busy_cpu = {"server": (cpu_ticks(server.pid) - cpu0["server"]) / TICK,
                    "agents": (sum(cpu_ticks(p) for p in busy_pids["agents"]) - cpu0["agents"]) / TICK}
        deadline = time.monotonic() + 10
        while len(watch.seen["running"]) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        stages = watch.stages(t0)
        watch.close()
        metrics = agent_metrics(metric_ports)
        per_node = {}
        for x in items:
            per_node[x["metadata"]["agentId"]] = per_node.get(x["metadata"]["agentId"], 0) + 1
        sleeping = int(subprocess.run(["pgrep", "-c", "-x", "sleep"], capture_output=True,
                                      text=True).stdout.strip() or 0)

        time.sleep(3)  # let the last status writes and watches settle
        pids = {"server": server.pid}
        pids.update({n_: a.pid for n_, a in zip(nodes, agents)})
        before = {k: cpu_ticks(p) for k, p in pids.items()}
        time.sleep(idle_seconds)
        idle = {k: 100.0 * (cpu_ticks(p) - before[k]) / TICK / idle_seconds
                for k, p in pids.items()}
        rss = {}
        for k, p in pids.items():
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss[k] = int(line.split()[1]) // 1024

        t1 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda i: api.call("DELETE", f"/v1/namespaces/default/computeinstances/p{i:05d}"),
                          range(n)))
        while api.list_all("/v1/namespaces/default/computeinstances"):
            if time.monotonic() - t1 > 600:
                raise RuntimeError("delete did not finish")
            time.sleep(0.2)
        t_deleted = time.monotonic() - t1
        return {"created_s": t_created, "create_stage": create_stage, "placed_s": t_placed or t_running, "running_s": t_running, "deleted_s": t_deleted,
                "stages": stages, "busy_cpu_s": busy_cpu, "agent_metrics": metrics, "load1": os.getloadavg()[0],
                "per_node": per_node, "idle_cpu_pct": idle, "rss_mb": rss,
                "sleep_processes_seen": sleeping}
    finally:
        for p in procs[::-1]:
            p.send_signal(signal.SIGKILL)
            p.wait()
        for node in nodes:
            sweep_cgroups(node)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--idle-seconds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=8, help="reconcile workers per agent")
    ap.add_argument("--clients", type=int, default=8,
                    help="concurrent create/delete clients (a connection per request)")
    args = ap.parse_args()
    results = []
    for r in range(args.rounds):
        workdir = tempfile.mkdtemp(prefix="photon-agent-bench-")
        try:
            res = one_round(args.instances, args.idle_seconds, workdir, args.workers, args.clients)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"round {r + 1}: {json.dumps(res)}", flush=True)
        results.append(res)
    med = lambda key: statistics.median(x[key] for x in results)
    print(f"\n{args.instances} process instances, 3 agents, {args.rounds} round(s), medians:")
    print(f"  creates accepted          {med('created_s'):8.2f} s ({args.clients} clients)")
    cs = lambda k: statistics.median(x["create_stage"][k] for x in results)
    print(f"  a create: {cs('server_ms_per_create'):.2f} ms in the server, "
          f"{cs('round_trip_ms'):.2f} ms round trip; {cs('commits'):.0f} commits, "
          f"{cs('requests_per_commit'):.1f} requests each")
    print(f"  first create -> all placed  {med('placed_s'):6.2f} s (scheduler)")
    print(f"  first create -> all RUNNING {med('running_s'):6.2f} s "
          f"({args.instances / med('running_s'):.0f} instances/s)")
    for stage in StageWatch.STAGES:
        m = lambda f: statistics.median(x["stages"][stage][f] or 0 for x in results)
        print(f"  stage {stage:9s} last at {m('last_s'):6.2f} s; per instance from the step before "
              f"p50 {m('step_p50_s'):6.3f} s, p99 {m('step_p99_s'):6.3f} s")
    for k in AGENT_METRICS:
        c = statistics.median(x["agent_metrics"][k]["count"] for x in results)
        t = statistics.median(x["agent_metrics"][k]["sum_s"] for x in results)
        print(f"  agents' {k:15s} {c:7.0f} calls, {t:8.2f} s in all ({1000 * t / max(c, 1):.2f} ms each)")
    accepted = statistics.median(x["agent_metrics"].get("status_writes_accepted", 0) for x in results)
    print(f"  status writes the server accepted {accepted:7.0f}")
    for key in ("noop_reconciles", "own_write_events"):
        v = statistics.median(x["agent_metrics"].get(key, 0) for x in results)
        print(f"  agents' {key:18s} {v:7.0f}")
    print(f"  agent stage: last placed -> last RUNNING "
          f"{statistics.median((x['stages']['running']['last_s'] or 0) - (x['stages']['placed']['last_s'] or 0) for x in results):6.2f} s")
    for k in ("server", "agents"):
        print(f"  CPU of the {k:7s} from the first create to all RUNNING "
              f"{statistics.median(x['busy_cpu_s'][k] for x in results):6.2f} s")
    print(f"  load average (1 min) at the end {statistics.median(x['load1'] for x in results):.2f}")
    print(f"  delete -> all gone        {med('deleted_s'):8.2f} s")
    for k in results[0]["idle_cpu_pct"]:
        cpu = statistics.median(x["idle_cpu_pct"][k] for x in results)
        rss = statistics.median(x["rss_mb"][k] for x in results)
        print(f"  idle CPU {k:14s} {cpu:6.2f} %   RSS {rss:5.0f} MiB")


if __name__ == "__main__":
    main()
