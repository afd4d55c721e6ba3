"""Test harness for flashdns: starts daemons on free loopback ports, runs dig, parses its
output. Every process started here is killed when the harness is closed."""
import atexit
import os
import sys
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

_TEMP_DIRS = []


def make_tmp(prefix="flashdns-test-"):
    """A temp dir removed when the test process exits (kept with FLASHDNS_KEEP_TMP=1)."""
    path = tempfile.mkdtemp(prefix=prefix)
    _TEMP_DIRS.append(path)
    return path


@atexit.register
def _remove_temp_dirs():
    if os.environ.get("FLASHDNS_KEEP_TMP"):
        return
    for path in _TEMP_DIRS:
        shutil.rmtree(path, ignore_errors=True)


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from free_port import free_port  # noqa: E402,F401  (one way to pick a port, tests/free_port.py)


def _die_with_parent():
    """In the child: get SIGTERM when the test process dies (e.g. killed by a ctest
    timeout), so no daemon outlives its test."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Daemon:
    """A child process with its output in a log file; stopped by stop()."""

    def __init__(self, argv, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_die_with_parent)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def dig(server, port, *args, timeout=5):
    """Runs dig and returns {'status', 'flags', 'answer', 'authority', 'additional', 'raw'}."""
    argv = ["dig", "@" + server, "-p", str(port), "+norec", "+nocmd", "+noall", "+comments",
            "+answer", "+authority", "+additional", "+time=2", "+tries=1"] + list(args)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout).stdout
    return parse_dig(out)


def parse_dig(out):
    result = {"status": None, "flags": set(), "answer": [], "authority": [], "additional": [],
              "raw": out, "opt": None}
    section = None
    for line in out.splitlines():
        m = re.search(r"status: (\w+)", line)
        if m:
            result["status"] = m.group(1)
        m = re.match(r";; flags: ([a-z ]*);", line)
        if m:
            result["flags"] = set(m.group(1).split())
        m = re.match(r";; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:", line)
        if m:
            section = m.group(1).lower()
            continue
        if line.startswith(";; OPT PSEUDOSECTION"):
            section = None
            result["opt"] = True
            continue
        if not line.strip() or line.startswith(";"):
            if not line.strip():
                section = None
            continue
        if section:
            parts = line.split(None, 4)
            if len(parts) == 5:
                name, ttl, klass, rtype, rdata = parts
                result[section].append((name.lower(), int(ttl), klass, rtype, rdata))
    return result


def wait_for_dns(port, name="example.com", deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        r = dig("127.0.0.1", port, name, "SOA", timeout=3)
        if r["status"] is not None:
            return
        time.sleep(0.1)
    raise RuntimeError("DNS server on port %d did not answer" % port)


def raw_query(port, packet, tcp=False, host="127.0.0.1", timeout=2.0):
    """Sends raw bytes; returns the response bytes or None on timeout."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if tcp:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(struct.pack("!H", len(packet)) + packet)
        try:
            hdr = s.recv(2)
            if len(hdr) < 2:
                return None
            n = struct.unpack("!H", hdr)[0]
            data = b""
            while len(data) < n:
                chunk = s.recv(n - len(data))
                if not chunk:
                    break
                data += chunk
            return data
        except socket.timeout:
            return None
        finally:
            s.close()
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(packet, (host, port))
        return s.recv(65535)
    except socket.timeout:
        return None
    finally:
        s.close()


def make_query(name, qtype=1, qid=0x1234, flags=0, qdcount=1, edns=None):
    """A query packet; edns=(udp_size, version) adds an OPT record."""
    q = b""
    for label in name.rstrip(".").split("."):
        if label:
            q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack("!HH", qtype, 1)
    arcount = 1 if edns else 0
    packet = struct.pack("!HHHHHH", qid, flags, qdcount, 0, 0, arcount) + q
    if edns:
        packet += b"\0" + struct.pack("!HHIH", 41, edns[0], edns[1] << 16, 0)
    return packet


class FlashDns:
    """A flashdns process with a generated config in a temp dir."""

    def __init__(self, binary, zones, extra="", workdir=None, port=None, api_port=None,
                 log_level="info", listen=("127.0.0.1", "[::1]")):
        self.tmp = workdir or make_tmp()
        # Ports picked here were free when picked; another suite may take one before the
        # daemon binds it, and start() then tries again on new ones.
        self.own_ports = port is None and api_port is None
        self.port = port or free_port()
        self.api_port = api_port or free_port()
        self.data_dir = os.path.join(self.tmp, "data")
        self._zones, self._extra, self._listen = zones, extra, listen
        self.config = os.path.join(self.tmp, "flashdns.yaml")
        self._write_config()
        self.binary = binary
        self.log_level = log_level
        self.daemon = None

    def _write_config(self):
        zones, extra, listen = self._zones, self._extra, self._listen
        lines = ["listen: [%s]" % ", ".join('"%s:%d"' % (h, self.port) for h in listen),
                 "api: 127.0.0.1:%d" % self.api_port, "data_dir: %s" % self.data_dir,
                 "workers: 2", "zones:"]
        for z in zones:
            lines.append("  - name: %s" % z["name"])
            lines.append("    file: %s" % z["file"])
            if "allow_transfer" in z:
                lines.append("    allow_transfer: [%s]" %
                             ", ".join('"%s"' % a for a in z["allow_transfer"]))
        if not zones:
            lines[-1] = "zones: []"
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n" + extra)

    def start(self, wait_name="example.com"):
        for attempt in range(3):
            self.daemon = Daemon([self.binary, "--config", self.config, "--log-level",
                                  self.log_level],
                                 os.path.join(self.tmp, "flashdns.log"))
            try:
                self._wait_ready(wait_name)
                return self
            except BaseException:
                exited = self.daemon.proc.poll() is not None
                self.daemon.stop()
                if not (exited and self.own_ports and attempt < 2 and
                        "in use" in self.daemon.output()):
                    raise
            self.port, self.api_port = free_port(), free_port()
            self._write_config()
        return self

    def _wait_ready(self, wait_name):
        wait_for_dns(self.port, wait_name)
        # The API comes up after DNS; "flashdns ready" is logged once everything listens.
        end = time.time() + 10
        while "flashdns ready" not in self.daemon.output():
            if time.time() > end or self.daemon.proc.poll() is not None:
                raise RuntimeError("flashdns did not become ready:\n" + self.daemon.output())
            time.sleep(0.05)

    def dig(self, *args, **kw):
        return dig("127.0.0.1", self.port, *args, **kw)

    def token(self):
        with open(os.path.join(self.data_dir, "api.token")) as f:
            return f.read().strip()

    def reload(self):
        self.daemon.signal(signal.SIGHUP)

    def stop(self):
        if self.daemon:
            return self.daemon.stop()
        return None


class TcpRegion:
    """A TCP listener on vip:port that accepts and closes: a region's load balancer as the
    GSLB health checks see it. start() and stop() may be repeated (a region failing and
    coming back)."""

    def __init__(self, vip, port, start=True):
        self.vip, self.port, self.stopped = vip, port, True
        if start:
            self.start()

    def start(self):
        if not self.stopped:
            return
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.vip, self.port))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                self.sock.accept()[0].close()
            except OSError:
                continue

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        self.thread.join()
        self.sock.close()
