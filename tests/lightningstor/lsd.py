"""Test harness: runs a real lightningstor daemon on a free loopback port with a temp data dir.

Used by the Python integration suites (unittest). Everything started here is stopped in
stop(); a daemon is never left behind, even when a test fails.
"""
import contextlib
import hashlib
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config as BotoConfig

BIN = os.environ.get("LIGHTNINGSTOR_BIN", os.path.join(os.path.dirname(__file__), "../../build/src/lightningstor/lightningstor"))
REGION = "us-east-1"


class Daemon:
    def __init__(self, extra_config=None, data_dir=None, tls=False):
        self.tmp = tempfile.mkdtemp(prefix="lightningstor-test-")
        self.tls = tls
        self.cert = os.path.join(self.tmp, "cert.pem")
        if tls:
            key = os.path.join(self.tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                            "-out", self.cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
            extra_config = dict(extra_config or {}, tls_cert=self.cert, tls_key=key)
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.extra = extra_config or {}
        self.proc = None
        self.port = None
        self.config_path = os.path.join(self.tmp, "config.yaml")
        self._write_config()
        out = subprocess.run([BIN, "--config", self.config_path, "keys", "create", "test"],
                             check=True, capture_output=True, text=True, timeout=30).stdout
        fields = dict(line.split(": ", 1) for line in out.strip().splitlines())
        self.access_key = fields["access_key_id"]
        self.secret_key = fields["secret_access_key"]

    def _write_config(self):
        lines = ["listen: 127.0.0.1:0", f"data_dir: {self.data_dir}", f"region: {REGION}",
                 f"port_file: {os.path.join(self.tmp, 'port')}", "log_level: warn"]
        lines += [f"{k}: {v}" for k, v in self.extra.items()]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        port_file = os.path.join(self.tmp, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        if getattr(self, "log", None):
            self.log.close()
        self.log = open(os.path.join(self.tmp, "daemon.log"), "ab")
        self.proc = subprocess.Popen([BIN, "--config", self.config_path], stdout=self.log, stderr=self.log)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("lightningstor exited: " + self.read_log())
            if os.path.exists(port_file):
                self.port = int(open(port_file).read().strip())
                try:
                    ctx = ssl.create_default_context(cafile=self.cert) if self.tls else None
                    urllib.request.urlopen(self.endpoint + "/healthz", timeout=2, context=ctx).read()
                    return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("lightningstor did not start: " + self.read_log())

    def read_log(self):
        try:
            return open(os.path.join(self.tmp, "daemon.log"), errors="replace").read()[-4000:]
        except OSError:
            return ""

    @property
    def endpoint(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def client(self, access_key=None, secret_key=None, region=REGION, **config):
        cfg = BotoConfig(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1}, **config)
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=region,
                            aws_access_key_id=access_key or self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key, config=cfg,
                            verify=self.cert if self.tls else None)

    def env(self):
        # awscli presigns with SigV2 unless told otherwise; this server speaks SigV4 only.
        aws_config = os.path.join(self.tmp, "aws-config")
        with open(aws_config, "w") as f:
            f.write("[default]\ns3 =\n    signature_version = s3v4\n")
        env = dict(os.environ)
        env.update({"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                    "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                    "AWS_CONFIG_FILE": aws_config, "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
        return env

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, cleanup=True):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        if cleanup:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _stored_files_hold(data_dir, needles):
    """Whether any file under data_dir holds any of needles, each file read once. A file may
    vanish while it is walked: the daemon unlinks freed blobs on a background thread."""
    for root, _, files in os.walk(data_dir):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            if any(n in data for n in needles):
                return True
    return False


def stored_files_contain(data_dir, needle):
    """Whether any file under data_dir holds needle."""
    return _stored_files_hold(data_dir, [needle])


def gone_from_disk(data_dir, needles, within=10.0):
    """Whether, within `within` seconds, no file under data_dir holds any of needles. A deleted
    or overwritten object's blob is unlinked shortly after the answer (on a background
    thread), so its bytes are waited for, bounded; bytes that stay fail."""
    deadline = time.monotonic() + within
    while _stored_files_hold(data_dir, needles):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def md5(data):
    return hashlib.md5(data).hexdigest()


@contextlib.contextmanager
def extra_headers(s3, operation, headers):
    """Adds raw headers to one operation's requests (signed with them)."""
    def add(request, **_):
        for k, v in headers.items():
            request.headers[k] = v
    event = "before-sign.s3." + operation
    s3.meta.events.register(event, add)
    try:
        yield
    finally:
        s3.meta.events.unregister(event, add)
