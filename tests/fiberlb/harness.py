"""Test harness for fiberlb: starts fiberlb (which runs the real HAProxy) and test members on
free loopback ports, talks to the REST API, and finds HAProxy processes by their run directory.
Every process started here is killed when the test ends, and every temp dir removed."""
import atexit
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY = os.environ.get("FIBERLB_BIN", "fiberlb")
_TEMP_DIRS = []
_PROCS = []


def make_tmp(prefix="fiberlb-test-"):
    path = tempfile.mkdtemp(prefix=prefix)
    _TEMP_DIRS.append(path)
    return path


@atexit.register
def _cleanup():
    for p in _PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()
    if not os.environ.get("FIBERLB_KEEP_TMP"):
        for path in _TEMP_DIRS:
            shutil.rmtree(path, ignore_errors=True)


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from free_port import free_port  # noqa: E402,F401  (one way to pick a port, tests/free_port.py)


def _die_with_parent():
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def wait_until(predicate, timeout=15.0, what="condition"):
    """Polls predicate until it returns a true value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class Member:
    """A test member process (member.py) on a free port."""

    def __init__(self, name, proxy_v2=False, fail=False):
        self.name = name
        argv = [sys.executable, os.path.join(HERE, "member.py"), "0", name]
        if proxy_v2:
            argv.append("--proxy-v2")
        if fail:
            argv.append("--fail")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        _PROCS.append(self.proc)
        line = self.proc.stdout.readline().decode()
        self.proc.stdout.close()
        if not line.startswith("ready "):
            raise RuntimeError("member %s did not start: %r" % (name, line))
        self.port = int(line.split()[1])
        self.address = "127.0.0.1:%d" % self.port

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def haproxy_pids(run_dir):
    """Pids of every process whose command line names run_dir (HAProxy master and workers
    are started with -f RUN_DIR/haproxy.cfg and inherit it across re-executions)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if "haproxy" in cmdline and run_dir in cmdline:
            pids.append(int(entry))
    return pids


class FiberLb:
    """fiberlb with its API on a free port and its data in a temp dir."""

    def __init__(self, listeners=None, pools=None, data_dir=None, extra=None):
        self.tmp = make_tmp()
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.api_port = free_port()
        config = {"api": "127.0.0.1:%d" % self.api_port, "data_dir": self.data_dir,
                  "listeners": listeners or [], "pools": pools or []}
        config.update(extra or {})
        self.config_path = os.path.join(self.tmp, "fiberlb.yaml")
        with open(self.config_path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        self.proc = None
        self.log_path = os.path.join(self.tmp, "fiberlb.log")

    @property
    def run_dir(self):
        return os.path.join(self.data_dir, "run")

    def start(self, wait=True):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BINARY, "--config", self.config_path], stdout=log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        log.close()
        _PROCS.append(self.proc)
        if wait:
            wait_until(self._healthy, 20, "fiberlb /healthz (log: %s)" % self.log_path)
            with open(os.path.join(self.data_dir, "api.token")) as f:
                self.token = f.read().strip()
        return self

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError("fiberlb exited %s: %s" % (self.proc.returncode, self.output()))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.api_port,
                                        timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # HAProxy must be gone with it, whatever the signal.
        wait_until(lambda: not haproxy_pids(self.run_dir), 10, "haproxy to exit")

    def api(self, method, path, body=None, token=None):
        """(status, parsed JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.api_port, path), data=data,
                                     method=method)
        req.add_header("Authorization", "Bearer " + (token or self.token))
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        except (ConnectionError, http.client.HTTPException) as e:
            # The daemon closed the connection unanswered: say whether it is still alive and
            # what it logged, which is what finding out why needs.
            alive = self.proc.poll() is None
            raise AssertionError("%s %s: %r (fiberlb %s); log tail:\n%s" % (
                method, path, e, "alive" if alive else "exited %s" % self.proc.returncode,
                self.output()[-4000:])) from e
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.api_port,
                                    timeout=10) as r:
            return r.read().decode()

    def member_status(self, pool):
        status, body = self.api("GET", "/v1/pools/" + pool)
        assert status == 200, body
        return {m["name"]: m["status"] for m in body["members"]}


def curl(url, *args, timeout=10):
    """curl's body and the values of -w, split by '\\n|' ; raises on a transport failure."""
    argv = ["curl", "-sS", "--max-time", str(timeout), *args, url]
    out = subprocess.run(argv, capture_output=True, timeout=timeout + 5)
    if out.returncode != 0:
        raise AssertionError("curl %s failed (%d): %s" % (url, out.returncode,
                                                          out.stderr.decode()))
    return out.stdout.decode()


def get_json(port, path="/", host=None, headers=()):
    args = []
    if host:
        args += ["-H", "Host: " + host]
    for h in headers:
        args += ["-H", h]
    return json.loads(curl("http://127.0.0.1:%d%s" % (port, path), *args))


def run_wrk(url, seconds, connections=16, threads=2):
    """Starts wrk; returns the process (its stdout is the report)."""
    p = subprocess.Popen(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds,
                          "--timeout", "10s", "--latency", url],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         preexec_fn=_die_with_parent)
    _PROCS.append(p)
    return p


def wrk_failures(report):
    """(non-2xx/3xx responses, socket errors, requests) from a wrk report."""
    import re
    non2xx = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    if m:
        non2xx = int(m.group(1))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report)
    if m:
        errors = sum(int(x) for x in m.groups())
    m = re.search(r"(\d+) requests in", report)
    requests = int(m.group(1)) if m else 0
    return non2xx, errors, requests
