#!/usr/bin/env python3
"""The photon CLI against a real photon-server binary: the README's walkthrough and bad input."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(BUILD, "src/server/photon-server")
PHOTON = os.path.join(BUILD, "src/cli/photon")
HOLLOW = os.path.join(BUILD, "src/agent/hollow/photon-hollow")


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from free_port import free_port  # noqa: E402,F401  (one way to pick a port, tests/free_port.py)


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="photon-cli-")
        cls.port = free_port()
        cls.proc = subprocess.Popen(
            [SERVER, "--data-dir", cls.dir, "--listen", f"127.0.0.1:{cls.port}",
             "--grpc-listen", f"127.0.0.1:{free_port()}", "--log-level", "warn"])
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{cls.port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        with open(os.path.join(cls.dir, "admin.token")) as f:
            cls.token = f.read().strip()
        cls.home = tempfile.mkdtemp(prefix="photon-home-")

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.wait(timeout=10)
        shutil.rmtree(cls.dir, ignore_errors=True)
        shutil.rmtree(cls.home, ignore_errors=True)

    def photon(self, *args, token=None, stdin=None):
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.home,
               "PHOTON_SERVER": f"http://127.0.0.1:{self.port}"}
        if token is not False:
            env["PHOTON_TOKEN"] = token or self.token
        return subprocess.run([PHOTON, *args], env=env, input=stdin, capture_output=True,
                              text=True, timeout=30, cwd=ROOT)

    def test_readme_walkthrough(self):
        r = self.photon("create", "-f", "examples/instance.yaml")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("computeinstances/hello created (operation ", r.stdout)
        op = r.stdout.split("operation ")[1].rstrip(")\n")
        r = self.photon("get", "computeinstances", "hello", "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        obj = json.loads(r.stdout)
        self.assertEqual(obj["metadata"]["name"], "hello")
        self.assertEqual(obj["status"]["phase"], "PENDING")
        # Until an agent runs it waits, and says why.
        for _ in range(100):
            r = self.photon("list", "computeinstances")
            if "no nodes available" in r.stdout:
                break
            time.sleep(0.05)
        self.assertIn("no nodes available", r.stdout)
        self.assertIn("hello", r.stdout)
        r = self.photon("operations", op)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("create", r.stdout)
        r = self.photon("get", "computeinstances", "hello", "-o", "yaml")
        self.assertIn("name: hello", r.stdout)
        r = self.photon("describe", "computeinstances", "hello")
        self.assertIn("no nodes available", r.stdout)
        # Watch shows the object, then its deletion.
        watch = subprocess.Popen([PHOTON, "watch", "computeinstances"], stdout=subprocess.PIPE,
                                 text=True, env={"HOME": self.home, "PHOTON_TOKEN": self.token,
                                                 "PHOTON_SERVER": f"http://127.0.0.1:{self.port}"})
        try:
            first = watch.stdout.readline()
            self.assertTrue(first.startswith("ADDED"), first)
            self.assertEqual(self.photon("delete", "computeinstances", "hello").returncode, 0)
            line = watch.stdout.readline()
            while line and not line.startswith("DELETED"):
                line = watch.stdout.readline()
            self.assertTrue(line.startswith("DELETED"), line)
        finally:
            watch.kill()
            watch.wait()
            watch.stdout.close()
        r = self.photon("get", "computeinstances", "hello")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not found", r.stderr)

    def test_apply_is_idempotent_and_updates(self):
        doc = "kind: ComputeInstance\nmetadata:\n  name: app\nspec:\n  process:\n    command: [/bin/true]\n"
        r = self.photon("apply", "-f", "-", stdin=doc)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.photon("apply", "-f", "-", stdin=doc.replace("/bin/true", "/bin/false"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configured", r.stdout)
        obj = json.loads(self.photon("get", "computeinstances", "app", "-o", "json").stdout)
        self.assertEqual(obj["spec"]["process"]["command"], ["/bin/false"])
        self.assertEqual(obj["metadata"]["generation"], "2")

    def test_bad_input_one_line_reason_nonzero_exit(self):
        cases = [
            ("kind: ComputeInstance\nmetadata: [unclosed\n", "malformed YAML"),
            ("metadata:\n  name: x\n", "kind: required"),
            ("kind: ComputeInstance\nmetadata:\n  name: Bad_Name\nspec:\n  process:\n    command: [x]\n",
             "metadata.name"),
            ("kind: ComputeInstance\nmetadata:\n  name: x\nspec:\n  procss: {}\n", "procss"),
            ("kind: Widget\nmetadata:\n  name: x\n", "widget"),
        ]
        for doc, want in cases:
            r = self.photon("create", "-f", "-", stdin=doc)
            self.assertNotEqual(r.returncode, 0, doc)
            self.assertIn(want.lower(), r.stderr.lower(), doc)
            self.assertLessEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = self.photon("list", "computeinstances", token="pct_0000000000000000_" + "0" * 48)
        self.assertEqual(r.returncode, 1)
        self.assertIn("401", r.stderr)
        r = self.photon("list", "computeinstances", "-o", "xml")
        self.assertNotEqual(r.returncode, 0)

    def test_multi_document_files_and_selectors(self):
        docs = "".join(
            f"---\nkind: ComputeInstance\nmetadata:\n  name: m{i}\n  labels:\n    tier: {'web' if i % 2 else 'db'}\n"
            f"spec:\n  process:\n    command: [/bin/true]\n" for i in range(4))
        r = self.photon("create", "-f", "-", stdin=docs)
        self.assertEqual(r.returncode, 0, r.stderr)
        items = json.loads(self.photon("list", "computeinstances", "-l", "tier=web", "-o", "json").stdout)
        self.assertEqual(sorted(i["metadata"]["name"] for i in items), ["m1", "m3"])

    def test_network_example_and_short_names(self):
        r = self.photon("create", "-f", "examples/network.yaml")
        self.assertEqual(r.returncode, 0, r.stderr)
        groups = json.loads(self.photon("list", "sg", "-o", "json").stdout)
        self.assertEqual([g["metadata"]["name"] for g in groups], ["web"])
        self.assertEqual(len(groups[0]["spec"]["rules"]), 4)
        vpcs = json.loads(self.photon("list", "vpc", "-o", "json").stdout)
        self.assertIn("prod", [v["metadata"]["name"] for v in vpcs])
        port = json.loads(self.photon("get", "ports", "web", "-o", "json").stdout)
        self.assertTrue(port["spec"]["ipAddress"].startswith("10.100.1."), port)
        self.assertEqual(port["spec"]["securityGroups"], ["web"])
        # Floating IPs need the server's floating_ip_pool (none here): a reason, a non-zero exit.
        r = self.photon("create", "-f", "-", stdin="kind: FloatingIp\nmetadata: {name: f}\nspec: {instance: web}\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("floating_ip_pool", r.stderr)
        self.assertEqual(json.loads(self.photon("list", "fip", "-o", "json").stdout), [])

    def test_login_writes_private_config(self):
        tok = os.path.join(self.home, "tok")
        with open(tok, "w") as f:
            f.write(self.token + "\n")
        r = self.photon("login", "--token-file", tok, token=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = os.path.join(self.home, ".config/photon/config.json")
        self.assertEqual(os.stat(cfg).st_mode & 0o777, 0o600)
        r = self.photon("list", "computeinstances", token=False)
        self.assertEqual(r.returncode, 0, r.stderr)

    def ops_post(self, path, body):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method="POST", data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def report(self, check, severity, team, key=None):
        return self.ops_post("/v1/namespaces/opsfilt/events", {"spec": {"opsEvent": {
            "check": check, "severity": severity, "dedupKey": key or check,
            "output": f"{check} {severity}", "labels": {"team": team},
            "reissueDurationSeconds": 3600}}})

    def test_events_and_alerts_list_and_watch_filters(self):
        # Critical events open alerts (once the server has seen the rule).
        self.ops_post("/v1/namespaces/opsfilt/eventrules", {
            "metadata": {"name": "page"},
            "spec": {"type": "ACTION", "match": "severity=CRITICAL",
                     "actions": [{"type": "CREATE_ALERT"}]}})
        deadline = time.time() + 10
        for i in range(10000):
            if self.report("probe", "CRITICAL", "probe", key=f"probe-{i}")["rule"]:
                break
            self.assertLess(time.time(), deadline, "the rule never applied")
            time.sleep(0.02)
        disk = self.report("disk", "CRITICAL", "db")
        self.assertTrue(disk["issued"], disk)
        # A repeat only counts (decided from memory); once the stored event is deleted, the
        # next report is new again and issued.
        self.assertFalse(self.report("disk", "CRITICAL", "db")["issued"])
        path = f"/v1/namespaces/opsfilt/events/{disk['event']}"
        auth = {"Authorization": f"Bearer {self.token}"}
        deadline = time.time() + 10
        while True:  # the repeat's count is written within the next batch (20 ms)
            with urllib.request.urlopen(urllib.request.Request(
                    f"http://127.0.0.1:{self.port}{path}", headers=auth), timeout=10) as r:
                if json.loads(r.read())["spec"]["opsEvent"].get("count") == "2":
                    break
            self.assertLess(time.time(), deadline, "the repeat's count was never written")
            time.sleep(0.02)
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method="DELETE", headers=auth)
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertLess(r.status, 300)
        again = self.report("disk", "CRITICAL", "db")
        self.assertTrue(again["issued"], again)
        self.report("load", "WARNING", "web")
        self.report("ping", "SUCCESS", "db")

        def listed(*args):
            r = self.photon(*args, "-n", "opsfilt", "-o", "json")
            self.assertEqual(r.returncode, 0, r.stderr)
            items = json.loads(r.stdout)
            return sorted(o["spec"]["opsEvent"]["check"] if "opsEvent" in o["spec"]
                          else o["spec"]["labels"]["check"] for o in items)

        self.assertEqual(listed("events", "list", "--severity", "critical", "-l", "team=db"),
                         ["disk"])
        self.assertEqual(listed("events", "list", "--severity", "warning,success"),
                         ["load", "ping"])
        self.assertEqual(listed("events", "list", "-l", "team=db"), ["disk", "ping"])
        self.assertEqual(listed("alerts", "list", "--severity", "CRITICAL", "-l", "team=db"),
                         ["disk"])
        self.assertEqual(listed("alerts", "list", "--severity", "warning"), [])
        r = self.photon("events", "list", "-n", "opsfilt", "-l", "team=web")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split()[:8], ["NAMESPACE", "NAME", "SEVERITY", "CHECK", "NODE",
                                                "COUNT", "LAST-SEEN", "OUTPUT"])
        self.assertIn(" WARNING ", r.stdout)
        self.assertNotIn("disk", r.stdout)
        # A filter that cannot be honoured is refused, never dropped.
        for args, why in ((("alerts", "list", "--severity", "success"),
                           "alerts have no severity 'SUCCESS' (known: FATAL, CRITICAL, WARNING)"),
                          (("events", "list", "-l", "team"), "want KEY=VALUE"),
                          (("events", "list", "-l", "team=a b"), "want KEY=VALUE"),
                          (("events", "watch", "-o", "yaml"), "a watch prints table rows"),
                          (("alerts", "list", "--color", "red"), "--color")):
            r = self.photon(*args, "-n", "opsfilt")
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(why, r.stderr, args)

        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.home,
               "PHOTON_SERVER": f"http://127.0.0.1:{self.port}", "PHOTON_TOKEN": self.token}
        watch = subprocess.Popen(
            [PHOTON, "events", "watch", "-n", "opsfilt", "--severity", "critical", "-l",
             "team=web", "-o", "json"], env=env, stdout=subprocess.PIPE, text=True)
        stopper = threading.Timer(20, watch.kill)  # bounds the reads below
        stopper.start()
        try:
            # Nothing listed matches; of the two reported after, only cpu is selected (mem,
            # reported first, would come first if the filter let it through).
            self.report("mem", "CRITICAL", "db")
            self.report("cpu", "CRITICAL", "web")
            seen = []
            while True:
                line = watch.stdout.readline()
                if not line:
                    break
                ev = json.loads(line)
                seen.append(ev["object"]["spec"]["opsEvent"]["check"])
                if seen[-1] == "cpu":
                    break
            self.assertEqual(seen, ["cpu"])
        finally:
            stopper.cancel()
            watch.kill()
            watch.wait()
            watch.stdout.close()



class DrainCliTest(unittest.TestCase):
    """`photon node drain` returns once the moved instances run on their new nodes (simulated
    by photon-hollow, which reports RUNNING as an agent does); it shows its progress, and
    after --timeout names the instances that are not running elsewhere."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="photon-drain-")
        cls.port = free_port()
        cls.proc = subprocess.Popen(
            [SERVER, "--data-dir", cls.dir, "--listen", f"127.0.0.1:{cls.port}",
             "--grpc-listen", f"127.0.0.1:{free_port()}", "--log-level", "warn"])
        cls.fleets = []
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{cls.port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        with open(os.path.join(cls.dir, "admin.token")) as f:
            cls.token = f.read().strip()
        cls.home = tempfile.mkdtemp(prefix="photon-home-")
        # One fleet per node, so that one node alone can be frozen (SIGSTOP).
        cls.fleets = [subprocess.Popen(
            [HOLLOW, "--server", f"http://127.0.0.1:{cls.port}",
             "--join-token", os.path.join(cls.dir, "join.token"),
             "--data-dir", os.path.join(cls.dir, f"hollow{i}"), "--nodes", "1",
             "--first-index", str(i), "--name-prefix", f"drain{os.getpid()}",
             "--heartbeat-seconds", "1"]) for i in range(2)]

    @classmethod
    def tearDownClass(cls):
        for fleet in cls.fleets:
            fleet.send_signal(signal.SIGCONT)
            fleet.send_signal(signal.SIGTERM)
            try:
                fleet.wait(timeout=10)
            except subprocess.TimeoutExpired:
                fleet.kill()
                fleet.wait()
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.wait(timeout=10)
        shutil.rmtree(cls.dir, ignore_errors=True)
        shutil.rmtree(cls.home, ignore_errors=True)

    def api(self, method, path, body=None):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def instances(self):
        items = self.api("GET", "/v1/namespaces/default/computeinstances")["items"]
        return {o["metadata"]["name"]: o for o in items}

    def wait(self, pred, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.1)
        self.fail(f"timed out waiting for {what}")

    def photon(self, *args):
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.home,
               "PHOTON_SERVER": f"http://127.0.0.1:{self.port}", "PHOTON_TOKEN": self.token}
        return subprocess.run([PHOTON, *args], env=env, capture_output=True, text=True,
                              timeout=90, cwd=ROOT)

    def test_drain_waits_for_running_elsewhere_then_times_out_naming_them(self):
        nodes = [f"drain{os.getpid()}-{i}" for i in range(2)]
        self.wait(lambda: sum(n.get("nodeStatus", {}).get("condition") == "READY" for n in
                              self.api("GET", "/v1/namespaces/system/nodes")["items"]) == 2,
                  "2 READY nodes")
        names = [f"d{i}" for i in range(4)]
        for n in names:
            self.api("POST", "/v1/namespaces/default/computeinstances",
                     {"metadata": {"name": n},
                      "spec": {"process": {"command": ["/bin/sleep", "60"]},
                               "resources": {"vcpu": 1, "memoryMb": 64}}})
        self.wait(lambda: all(o["status"]["phase"] == "RUNNING"
                              for o in self.instances().values()) and
                  len(self.instances()) == 4, "4 RUNNING instances")
        on = {}
        for n, o in self.instances().items():
            on.setdefault(o["metadata"]["agentId"], []).append(n)
        source = max(on, key=lambda k: len(on[k]))
        target = [n for n in nodes if n != source][0]
        moved = sorted(on[source])

        # The target node is frozen: the instances move there but do not run yet, and the drain
        # must still be waiting when the node comes back.
        frozen = self.fleets[nodes.index(target)]
        frozen.send_signal(signal.SIGSTOP)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.home,
               "PHOTON_SERVER": f"http://127.0.0.1:{self.port}", "PHOTON_TOKEN": self.token}
        drain = subprocess.Popen([PHOTON, "node", "drain", source, "--timeout", "60"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.wait(lambda: all(self.instances()[n]["metadata"]["agentId"] == target
                              for n in moved), "the instances placed on the frozen node")
        time.sleep(1.5)  # the frozen period: nothing runs on the target node meanwhile
        self.assertIsNone(drain.poll(), "drain returned before the instances ran elsewhere")
        frozen.send_signal(signal.SIGCONT)
        out, err = drain.communicate(timeout=60)
        r = subprocess.CompletedProcess(drain.args, drain.returncode, out, err)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"node/{source} drained: {len(moved)} instances running elsewhere",
                      r.stdout)
        # Piped: plain progress lines, the last one complete.
        self.assertNotIn("\r", r.stderr)
        self.assertIn(f"drain: {len(moved)}/{len(moved)} moved and running, 0 left on {source}",
                      r.stderr.splitlines())
        # When it returned, every moved instance was already RUNNING on the other node.
        now = self.instances()
        for n in moved:
            self.assertEqual(now[n]["metadata"]["agentId"], target)
            self.assertEqual(now[n]["status"]["phase"], "RUNNING")
            self.assertEqual(now[n]["status"]["details"]["node"], target)

        # Nowhere to go now (the first node is cordoned): the drain times out naming them.
        r = self.photon("node", "drain", target, "--timeout", "3")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("drain: after 3 s", r.stderr)
        for n in names:
            self.assertIn(f"default/{n} (", r.stderr)


class UserCliTest(unittest.TestCase):
    """What a kubectl/incus user expects: cluster-scoped nodes, short names, wait, sort,
    wide and name output, list -w, a describe summary, actions that print their result and
    a generated completion script; one simulated node (photon-hollow) runs the instances."""

    @classmethod
    def setUpClass(cls):
        DrainCliTest.setUpClass.__func__(cls)

    tearDownClass = classmethod(DrainCliTest.tearDownClass.__func__)
    api = DrainCliTest.api
    instances = DrainCliTest.instances
    wait = DrainCliTest.wait
    photon = DrainCliTest.photon

    def create(self, name):
        self.api("POST", "/v1/namespaces/default/computeinstances",
                 {"metadata": {"name": name},
                  "spec": {"process": {"command": ["/bin/sleep", "60"]},
                           "resources": {"vcpu": 1, "memoryMb": 64}}})

    def test_nodes_need_no_namespace_and_short_names(self):
        node = f"drain{os.getpid()}-0"
        self.wait(lambda: node in self.photon("list", "nodes").stdout, "the node listed")
        r = self.photon("get", "node", node, "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["metadata"]["name"], node)
        self.assertIn(node, self.photon("list", "no", "-o", "name").stdout.split())
        self.assertEqual(self.api("GET", f"/v1/nodes/{node}")["metadata"]["name"], node)
        self.create("short")
        for short in ("ci", "vm", "computeinstance"):
            r = self.photon("get", short, "short", "-o", "name")
            self.assertEqual(r.stdout, "short\n", short)

    def test_wait_for_phase_delete_and_timeout(self):
        self.create("waited")
        r = self.photon("wait", "ci", "waited", "--for", "phase=RUNNING", "--timeout", "30s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "computeinstances/waited phase=RUNNING\n")
        t0 = time.monotonic()
        r = self.photon("wait", "ci", "waited", "--for", "phase=ERROR", "--timeout", "1s")
        self.assertEqual(r.returncode, 1)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("timed out after 1 s waiting for computeinstances/waited to be "
                      "phase=ERROR (now: RUNNING)", r.stderr)
        r = self.photon("wait", "ci", "waited", "--for", "running")
        self.assertEqual(r.returncode, 1)
        self.assertIn("'running' is not phase=PHASE, condition=CONDITION or delete", r.stderr)
        r = self.photon("wait", "ci", "waited", "--for", "phase=RUNNING", "--timeout", "soon")
        self.assertIn("--timeout: 'soon' is not a duration", r.stderr)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.home,
               "PHOTON_SERVER": f"http://127.0.0.1:{self.port}", "PHOTON_TOKEN": self.token}
        waiter = subprocess.Popen([PHOTON, "wait", "ci", "waited", "--for", "delete",
                                   "--timeout", "30s"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            self.assertEqual(self.photon("delete", "ci", "waited").returncode, 0)
            out, err = waiter.communicate(timeout=40)
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.communicate()
        self.assertEqual(waiter.returncode, 0, err)
        self.assertEqual(out, "computeinstances/waited deleted\n")
        node = f"drain{os.getpid()}-0"
        r = self.photon("wait", "node", node, "--for", "condition=READY", "--timeout", "30s")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_list_sort_wide_and_watch(self):
        for n in ("sortb", "sorta"):
            self.create(n)
        r = self.photon("list", "ci", "--sort-by", ".metadata.name", "-o", "name")
        names = [n for n in r.stdout.split() if n.startswith("sort")]
        self.assertEqual(names, ["sorta", "sortb"])
        r = self.photon("list", "ci", "--sort-by", ".metadata.nosuch")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--sort-by: no listed object has the field '.metadata.nosuch'", r.stderr)
        r = self.photon("list", "ci", "-o", "wide")
        header = r.stdout.splitlines()[0].split()
        self.assertEqual(header[-4:], ["DRIVER", "ADDRESS", "CREATED", "ID"])
        row = [l for l in r.stdout.splitlines() if " sorta " in l][0]
        self.assertIn(" process ", row)
        self.assertIn(" 10.", row)  # the address from the default subnet
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.home,
               "PHOTON_SERVER": f"http://127.0.0.1:{self.port}", "PHOTON_TOKEN": self.token}
        watch = subprocess.Popen([PHOTON, "list", "ci", "-w"], env=env, stdout=subprocess.PIPE,
                                 text=True)
        try:
            self.assertTrue(watch.stdout.readline().startswith("NAMESPACE"))
            self.assertEqual(self.photon("delete", "ci", "sortb").returncode, 0)
            line = watch.stdout.readline()
            while line and not line.startswith("DELETED"):
                line = watch.stdout.readline()
            self.assertIn("default/sortb", line)
        finally:
            watch.kill()
            watch.wait()
            watch.stdout.close()

    def test_describe_is_a_summary(self):
        self.create("described")
        self.wait(lambda: self.instances()["described"]["status"].get("phase") == "RUNNING",
                  "described RUNNING")
        r = self.photon("describe", "vm", "described")
        self.assertEqual(r.returncode, 0, r.stderr)
        for want in ("Name:       described", "Namespace:  default", "Driver:     process",
                     "Phase:      RUNNING", f"Node:       drain{os.getpid()}-", "Spec:",
                     "Conditions:", "Events:"):
            self.assertIn(want, r.stdout)

    def test_actions_wait_for_their_result_or_return_the_operation(self):
        self.create("acted")
        self.wait(lambda: self.instances()["acted"]["metadata"].get("agentId"), "acted placed")
        # The simulated node runs no actions: waiting ends at --timeout naming the operation.
        r = self.photon("action", "ci", "acted", "restart", "--timeout", "1s")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"operation [0-9a-f-]+ is still PENDING after 1 s")
        r = self.photon("action", "ci", "acted", "restart", "--async")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^restart queued \(operation [0-9a-f-]+\)$")
        r = self.photon("logs", "acted", "--tail", "-1")
        self.assertIn("--tail", r.stderr)

    def test_bash_completion(self):
        r = self.photon("completion", "bash")
        self.assertEqual(r.returncode, 0, r.stderr)
        script = os.path.join(self.home, "photon.bash")
        with open(script, "w") as f:
            f.write(r.stdout)
        self.assertEqual(subprocess.run(["bash", "-n", script]).returncode, 0)
        self.create("completed")

        def complete(*words):
            line = " ".join(f"'{w}'" for w in words)
            prog = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
                    "_photon; printf '%s\\n' \"${COMPREPLY[@]}\"")
            env = {"PATH": os.path.dirname(os.path.abspath(PHOTON)) + ":" +
                   os.environ.get("PATH", ""), "HOME": self.home,
                   "PHOTON_SERVER": f"http://127.0.0.1:{self.port}",
                   "PHOTON_TOKEN": self.token}
            out = subprocess.run(["bash", "-c", prog], env=env, capture_output=True, text=True,
                                 timeout=30)
            return out.stdout.split()

        self.assertIn("list", complete("photon", "li"))
        self.assertEqual(complete("photon", "get", "computei"), ["computeinstances"])
        self.assertIn("completed", complete("photon", "get", "computeinstances", "comp"))
        self.assertIn("drain", complete("photon", "node", "dr"))
        self.assertIn("--sort-by", complete("photon", "list", "--so"))
        self.assertEqual(self.photon("completion", "zsh").returncode, 1)


class TokenCliTest(unittest.TestCase):
    """photon token create/list/revoke/rotate-admin, on a server of their own (rotation changes
    the admin token the other tests use)."""
    setUpClass = classmethod(CliTest.setUpClass.__func__)
    tearDownClass = classmethod(CliTest.tearDownClass.__func__)
    photon = CliTest.photon

    def test_create_list_revoke(self):
        r = self.photon("token", "create", "--principal", "dana", "--role", "viewer", "--ttl", "2h")
        self.assertEqual(r.returncode, 0, r.stderr)
        token = r.stdout.strip()
        tid = token[4:20]
        self.assertIn(tid, r.stderr)
        self.assertEqual(self.photon("list", "computeinstances", token=token).returncode, 0)
        listing = self.photon("token", "list")
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertNotIn(token[21:], listing.stdout)
        row = [l for l in listing.stdout.splitlines() if l.startswith(tid)]
        self.assertEqual(len(row), 1, listing.stdout)
        self.assertIn("dana", row[0])
        self.assertIn("viewer@default", row[0])
        self.assertTrue(row[0].rstrip().endswith("active"), row[0])
        items = json.loads(self.photon("token", "list", "-o", "json").stdout)
        mine = [t for t in items if t["id"] == tid][0]
        self.assertNotIn("secretSha256", mine)
        # No one but admins manage tokens.
        r = self.photon("token", "list", token=token)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("403", r.stderr)
        r = self.photon("token", "revoke", tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.photon("list", "computeinstances", token=token)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("revoked", r.stderr)
        row = [l for l in self.photon("token", "list").stdout.splitlines() if l.startswith(tid)]
        self.assertIn("revoked", row[0])

    def test_revoked_token_ends_watch_and_wait_with_an_error(self):
        r = self.photon("token", "create", "--principal", "erin", "--role", "editor")
        self.assertEqual(r.returncode, 0, r.stderr)
        token = r.stdout.strip()
        env = {"HOME": self.home, "PHOTON_TOKEN": token,
               "PHOTON_SERVER": f"http://127.0.0.1:{self.port}"}

        def open_watches():
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as m:
                for line in m.read().decode().splitlines():
                    if line.startswith("photon_open_watches"):
                        return float(line.split()[-1])
            return 0

        base = open_watches()
        procs = [subprocess.Popen([PHOTON, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
                 for args in (["watch", "computeinstances"],
                              ["wait", "ci", "never-there", "--for", "phase=RUNNING",
                               "--timeout", "60s"])]
        try:
            deadline = time.time() + 20
            while open_watches() < base + 2 and time.time() < deadline:
                time.sleep(0.05)
            self.assertGreaterEqual(open_watches(), base + 2, "the two watches never opened")
            self.assertEqual(self.photon("token", "revoke", token[4:20]).returncode, 0)
            for p in procs:
                out, err = p.communicate(timeout=20)
                # A clear error and a non-zero exit; the server's ERROR line is no row or event.
                self.assertEqual(p.returncode, 1, (out, err))
                self.assertIn("the server ended the watch: UNAUTHENTICATED", err)
                self.assertIn("revoked", err)
                self.assertNotIn("ERROR", out)
        finally:
            for p in procs:
                p.kill()
                p.wait()

    def test_ttl_expires_and_join_tokens(self):
        r = self.photon("token", "create", "--principal", "brief", "--ttl", "1s")
        self.assertEqual(r.returncode, 0, r.stderr)
        token = r.stdout.strip()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = self.photon("list", "computeinstances", token=token)
            if r.returncode != 0:
                break
            time.sleep(0.05)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("expired at", r.stderr)
        for bad in ("5x", "h", "0s", "1.5h"):
            r = self.photon("token", "create", "--principal", "p", "--ttl", bad)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn("--ttl", r.stderr)
        r = self.photon("token", "create", "--principal", "rack-7", "--role", "join")
        self.assertEqual(r.returncode, 0, r.stderr)
        tid = r.stdout.strip()[4:20]
        row = [l for l in self.photon("token", "list").stdout.splitlines() if l.startswith(tid)]
        self.assertIn("join@*", row[0])
        self.assertNotIn("never", row[0])

    def test_rotate_admin(self):
        tok = os.path.join(self.home, "admin-tok")
        with open(tok, "w") as f:
            f.write(self.token + "\n")
        self.assertEqual(self.photon("login", "--token-file", tok, token=False).returncode, 0)
        r = self.photon("token", "rotate-admin", token=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        fresh = r.stdout.strip()
        old, type(self).token = self.token, fresh  # the later tests' admin token
        path = os.path.join(self.dir, "admin.token")
        with open(path) as f:
            self.assertEqual(f.read().strip(), fresh)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        r = self.photon("list", "computeinstances", token=old)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("revoked", r.stderr)
        # The saved login followed the rotation.
        r = self.photon("list", "computeinstances", token=False)
        self.assertEqual(r.returncode, 0, r.stderr)


class IdentityCliTest(unittest.TestCase):
    """photon login --user (the password from standard input, never the command line) and
    photon auth can-i / whoami, on a server of their own."""
    setUpClass = classmethod(CliTest.setUpClass.__func__)
    tearDownClass = classmethod(CliTest.tearDownClass.__func__)
    photon = CliTest.photon

    def api(self, method, path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status

    def test_password_login_and_can_i(self):
        password = "cli user's secret"
        self.assertEqual(self.api("POST", "/v1/users", {"metadata": {"name": "gina"},
                                                        "spec": {"password": password}}), 201)
        self.assertEqual(self.api("POST", "/v1/roles", {
            "metadata": {"name": "starter"},
            "spec": {"rules": [{"verbs": ["create", "get", "list"],
                                "kinds": ["computeinstances"]}]}}), 201)
        self.assertEqual(self.api("POST", "/v1/rolebindings", {
            "metadata": {"name": "gina-dev"},
            "spec": {"namespace": "dev", "role": "starter", "subjects": ["user:gina"]}}), 201)
        # The password is never an argument.
        r = self.photon("login", "--user", "gina", "--password", password, token=False)
        self.assertNotEqual(r.returncode, 0)
        r = self.photon("login", "--user", "gina", token=False, stdin="wrong password\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("invalid user or password", r.stderr)
        r = self.photon("login", "--user", "gina", token=False, stdin=password + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg_path = os.path.join(self.home, ".config/photon/config.json")
        self.assertEqual(os.stat(cfg_path).st_mode & 0o777, 0o600)
        with open(cfg_path) as f:
            text = f.read()
        self.assertNotIn(password, text)
        cfg = json.loads(text)
        self.assertTrue(cfg["token"].startswith("pct_"))
        self.assertTrue(cfg["refresh_token"].startswith("pct_"))
        r = self.photon("auth", "whoami", token=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("user:gina", r.stdout)
        self.assertIn("starter in dev", r.stdout)
        r = self.photon("auth", "can-i", "create", "computeinstances", "-n", "dev", token=False)
        self.assertEqual((r.returncode, r.stdout), (0, "yes\n"), r.stderr)
        r = self.photon("auth", "can-i", "delete", "computeinstances", "-n", "dev", token=False)
        self.assertEqual((r.returncode, r.stdout), (1, "no\n"), r.stderr)
        r = self.photon("auth", "can-i", "create", "computeinstances", "-n", "prod", token=False)
        self.assertEqual((r.returncode, r.stdout), (1, "no\n"), r.stderr)
        r = self.photon("auth", "can-i", "fly", "computeinstances", token=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("verb", r.stderr)
        r = self.photon("list", "computeinstances", "-n", "dev", token=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        # A refused access token (expired; here spoilt) is replaced through the refresh token.
        cfg["token"] = cfg["token"][:-4] + "0000"
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        r = self.photon("list", "computeinstances", "-n", "dev", token=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(cfg_path) as f:
            self.assertNotEqual(json.load(f)["refresh_token"], cfg["refresh_token"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
