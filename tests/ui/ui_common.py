"""What the dashboard's tests and bench/ui share: a real photon-server (with photon-hollow
nodes that report instances RUNNING as an agent does), a REST client, and topology objects."""
import os
import shutil
import signal
import subprocess
import tempfile
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "server"))
from provider_harness import Http  # noqa: E402  (one REST client for the Python suites)


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from free_port import free_port  # noqa: E402,F401  (one way to pick a port, tests/free_port.py)


class Cluster:
    """photon-server on a free port with its own data dir, and `nodes` hollow nodes."""

    def __init__(self, build, nodes=1, prefix="ui"):
        self.build = build
        self.dir = tempfile.mkdtemp(prefix="photon-ui-")
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.procs = []
        self.logs = []
        try:
            self.start(nodes, prefix)
        except BaseException:
            self.close()  # no daemon or directory outlives a failed start
            raise

    def start(self, nodes, prefix):
        build = self.build
        self.server = self.spawn([os.path.join(build, "src/server/photon-server"),
                                  "--data-dir", os.path.join(self.dir, "data"),
                                  "--listen", "127.0.0.1:%d" % self.port,
                                  "--grpc-listen", "127.0.0.1:%d" % free_port(),
                                  "--log-level", "warn"], "server")
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                break
            except OSError:
                if self.server.poll() is not None or time.time() > deadline:
                    raise AssertionError("photon-server did not start")
                time.sleep(0.05)
        with open(os.path.join(self.dir, "data", "admin.token")) as f:
            self.token = f.read().strip()
        self.node_prefix = "%s%d" % (prefix, os.getpid())
        if nodes:
            self.spawn([os.path.join(build, "src/agent/hollow/photon-hollow"),
                        "--server", self.base,
                        "--join-token", os.path.join(self.dir, "data", "join.token"),
                        "--data-dir", os.path.join(self.dir, "hollow"), "--nodes", str(nodes),
                        "--name-prefix", self.node_prefix, "--heartbeat-seconds", "1"], "hollow")
            self.wait_nodes(nodes)

    def spawn(self, args, name):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        self.logs.append(log)
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def wait_nodes(self, n):
        deadline = time.time() + 60
        while time.time() < deadline:
            items = self.call("GET", "/v1/namespaces/system/nodes")[1].get("items", [])
            ready = [i for i in items if i.get("nodeStatus", {}).get("condition") == "READY"]
            if len(ready) >= n:
                self.nodes = sorted(i["metadata"]["name"] for i in ready)
                return
            time.sleep(0.1)
        raise AssertionError("hollow nodes not READY")

    def call(self, method, path, body=None, token=None):
        return Http(self.base, self.token).call(method, path, body, token=token, timeout=30)

    def must(self, method, path, body=None):
        code, out = self.call(method, path, body)
        if code >= 300:
            raise AssertionError("%s %s: %d %s" % (method, path, code, out))
        return out

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for log in self.logs:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def floor_objects(dc, floor, racks=50, units=42, devices=2000, nodes=(), cluster="", links=False):
    """A datacenter, a floor and its racks filled with `devices` machines (2 U each, the rest
    1 U), the first ones backing `nodes`. With links, each device is cabled to two others
    (switch ports), 2 cables a device on average."""
    out = [("datacenters", {"kind": "Datacenter", "metadata": {"name": dc},
                            "spec": {"location": "test"}}),
           ("floors", {"kind": "Floor", "metadata": {"name": floor},
                       "spec": {"datacenter": dc, "building": 1, "level": 1}})]
    for r in range(racks):
        out.append(("racks", {"kind": "Rack", "metadata": {"name": "%s-r%02d" % (floor, r)},
                              "spec": {"floor": floor, "heightU": units, "row": r // 10,
                                       "position": r % 10}}))
    per_rack = -(-devices // racks)
    names = []
    for i in range(devices):
        r, k = divmod(i, per_rack)
        # front-mounted from U1 upwards; when the front is full, rear-mounted
        face, slot = ("front", k) if k < units - 2 else ("rear", k - (units - 2))
        name = "%s-d%04d" % (floor, i)
        names.append(name)
        spec = {"model": "x1", "type": "server" if i % 20 else "switch",
                "rack": "%s-r%02d" % (floor, r), "positionU": slot + 1, "heightU": 1,
                "face": face, "cluster": cluster,
                "ports": [{"name": "p0", "network": "net-%d" % (i // 40), "ip": "10.%d.%d.%d" % (
                    i // 65536, (i // 256) % 256, i % 256)},
                          {"name": "p1", "network": "mgmt"}, {"name": "p2"}]}
        if 1 <= i <= len(nodes):
            spec["node"] = nodes[i - 1]  # device 0 is a switch
        if links and i > 0:
            spec["links"] = [{"port": "p1", "peer": names[(i - 1) // 2], "peerPort": "p2"}]
            if i > 1:
                spec["links"].append({"port": "p2", "peer": names[i - 2], "peerPort": "p0"})
        out.append(("physicalresources", {"kind": "PhysicalResource",
                                          "metadata": {"name": name}, "spec": spec}))
    return out


# A VM's user-data script (as tests/agent/console_test.cc): says it listens, then answers every
# line of its serial port with "guest-heard:LINE".
ECHO_SCRIPT = ("#!/bin/sh\necho guest-listening\n"
               "while read -r line; do echo \"guest-heard:$line\"; done </dev/ttyS0 >/dev/ttyS0\n")


def start_vm_node(cluster, root, node):
    """A photon-agent named `node` with the vm driver (TCG or KVM) on `cluster`, and the test
    guest (scripts/make-vm-image.sh) as images kernel and initrd in namespace default. Needs
    root. Returns the agent's data directory (QEMU processes there outlive the agent: see
    kill_leftover_vms)."""
    image = os.path.join(cluster.dir, "image")
    out = subprocess.run([os.path.join(root, "scripts/make-vm-image.sh"), image],
                         capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        raise AssertionError("make-vm-image.sh: " + out.stdout + out.stderr)
    config = os.path.join(cluster.dir, "agent.yaml")
    with open(config, "w") as f:
        f.write('drivers:\n  vm: {ready_timeout_s: "240", images_root: "%s"}\n'
                '  container: {enabled: "false"}\n' % cluster.dir)
    agent_dir = os.path.join(cluster.dir, "agent")
    # Shared network mode: no port namespaces on the host (tests/net covers those).
    cluster.spawn([os.path.join(cluster.build, "src/agent/photon-agent"), "--server",
                   "127.0.0.1:%d" % cluster.port, "--token-file",
                   os.path.join(cluster.dir, "data", "join.token"), "--data-dir", agent_dir,
                   "--name", node, "--config", config, "--heartbeat-seconds", "1",
                   "--resync-seconds", "1", "--vcpu", "4", "--memory-mb", "2048", "--disk-gb",
                   "20", "--network-mode", "shared"], "agent")
    deadline = time.time() + 60
    while cluster.call("GET", "/v1/namespaces/system/nodes/" + node)[0] != 200:
        if time.time() > deadline:
            raise AssertionError("node %s did not register" % node)
        time.sleep(0.1)
    for name, fname, fmt in (("kernel", "vmlinuz", "kernel"), ("initrd", "initrd.img", "initrd")):
        with open(os.path.join(image, fname + ".sha256")) as f:
            sha = f.read().strip()
        cluster.must("POST", "/v1/namespaces/default/images", {
            "metadata": {"name": name},
            "spec": {"sourcePath": os.path.join(image, fname), "format": fmt, "sha256": sha}})
    return agent_dir


def echo_vm(name, node):
    """A ComputeInstance of the test guest on `node` running ECHO_SCRIPT."""
    return {"kind": "ComputeInstance", "metadata": {"name": name, "agentId": node},
            "spec": {"vm": {"kernel": "kernel", "initrd": "initrd",
                            "kernelArgs": "console=ttyS0 quiet"},
                     "resources": {"vcpu": 1, "memoryMb": "256"},
                     "network": {"hostNetwork": True}, "userData": ECHO_SCRIPT}}


def kill_leftover_vms(cluster):
    """QEMU processes under the cluster's directory (the agent leaves VMs running when it
    stops)."""
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if (cluster.dir + "/").encode() in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
