"""What the provider end-to-end tests share: bounded polling, a small REST client with the
admin token, and starting a real photon-server binary with a config until /healthz answers."""
import json
import os
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "flashdns"))
import harness  # noqa: E402  (flashdns's test harness: daemons, free ports, temp dirs)


def wait_until(what, fn, timeout=15.0):
    """Polls fn() until it returns something truthy; fails the test naming `what`."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))


class Http:
    def __init__(self, base, token):
        self.base, self.token = base, token

    def call(self, method, path, body=None, token=None, timeout=10):
        """(status, decoded JSON or text) of one REST call; `token` replaces the client's."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + (token or self.token))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text.strip().startswith("{") else text)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text


def start_photon_server(binary, config, data, port, log_dir):
    """A photon-server on 127.0.0.1:port with `config`; returns its harness.Daemon once healthy."""
    d = harness.Daemon([binary, "--config", config, "--data-dir", data,
                        "--listen", "127.0.0.1:%d" % port,
                        "--grpc-listen", "127.0.0.1:%d" % harness.free_port(),
                        "--log-level", "info"],
                       os.path.join(log_dir, "server-%d.log" % port))

    def healthy():
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1)
            return True
        except OSError:
            if d.proc.poll() is not None:
                raise AssertionError("photon-server exited:\n" + d.output())
            return False
    wait_until("photon-server /healthz", healthy)
    return d
