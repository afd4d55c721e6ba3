#!/usr/bin/env python3
"""The lightningstor Bucket provider end to end: a real lightningstor on a fixed loopback port,
a real photon-server binary configured with a `providers:` entry, Buckets created through the
REST API and the photon CLI, the result checked with boto3 and the aws CLI against lightningstor.
Every process is stopped at the end (and gets SIGTERM if this test dies); every wait is bounded.

usage: bucket_provider_test.py BUILD_DIR"""
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

BUILD = sys.argv.pop(1) if len(sys.argv) > 1 else "build"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "flashdns"))
import harness  # noqa: E402  (flashdns's test harness: daemons, free ports, temp dirs)
from provider_harness import Http, start_photon_server, wait_until  # noqa: E402

import boto3  # noqa: E402
from botocore.config import Config as BotoConfig  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

SERVER = os.path.join(BUILD, "src/server/photon-server")
LIGHTNINGSTOR = os.path.join(BUILD, "src/lightningstor/lightningstor")
PHOTON = os.path.join(BUILD, "src/cli/photon")
REGION = "local"


class Lightningstor:
    """lightningstor on a fixed port (photon-server's config names it), restartable."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = harness.free_port()
        self.config = os.path.join(tmp, "lightningstor.yaml")
        with open(self.config, "w") as f:
            f.write("listen: 127.0.0.1:%d\ndata_dir: %s\nregion: %s\nlog_level: warn\n" %
                    (self.port, os.path.join(tmp, "ls-data"), REGION))
        out = subprocess.run([LIGHTNINGSTOR, "--config", self.config, "keys", "create", "photon"],
                             check=True, capture_output=True, text=True, timeout=30).stdout
        self.key_file = os.path.join(tmp, "lightningstor.key")
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(out)
        fields = dict(line.split(": ", 1) for line in out.strip().splitlines())
        self.access_key, self.secret_key = fields["access_key_id"], fields["secret_access_key"]
        self.daemon = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.daemon = harness.Daemon([LIGHTNINGSTOR, "--config", self.config],
                                     os.path.join(self.tmp, "lightningstor.log"))

        def healthy():
            try:
                urllib.request.urlopen(self.endpoint + "/healthz", timeout=1)
                return True
            except OSError:
                if self.daemon.proc.poll() is not None:
                    raise AssertionError("lightningstor exited:\n" + self.daemon.output())
                return False
        wait_until("lightningstor /healthz", healthy)

    def stop(self):
        if self.daemon:
            self.daemon.stop()
            self.daemon = None

    def s3(self):
        cfg = BotoConfig(s3={"addressing_style": "path"}, signature_version="s3v4",
                         retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10)
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, config=cfg)

    def aws(self, *args):
        cfg = os.path.join(self.tmp, "aws-config")
        with open(cfg, "w") as f:
            f.write("[default]\ns3 =\n    signature_version = s3v4\n")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.access_key,
                   AWS_SECRET_ACCESS_KEY=self.secret_key, AWS_DEFAULT_REGION=REGION,
                   AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=cfg,
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        return subprocess.run(["aws", "--endpoint-url", self.endpoint, *args], env=env,
                              capture_output=True, text=True, timeout=60)


def bucket(name, ns="team-a", versioning=False, rules=(), region=""):
    spec = {"versioningEnabled": versioning,
            "lifecycleRules": [{"prefix": p, "expirationDays": d} for p, d in rules]}
    if region:
        spec["region"] = region
    return {"kind": "Bucket", "metadata": {"name": name, "namespace": ns}, "spec": spec}


class BucketProviderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = harness.make_tmp("photon-bucket-")
        cls.ls = Lightningstor(cls.tmp)
        cls.ls.start()
        cls.port = harness.free_port()
        cls.data = os.path.join(cls.tmp, "server")
        cls.config = os.path.join(cls.tmp, "photon-server.yaml")
        with open(cls.config, "w") as f:
            f.write("provider_resync_s: 2\n"
                    "providers:\n"
                    "  - driver: lightningstor\n"
                    "    endpoint: %s\n"
                    "    region: %s\n"
                    "    credentials_file: %s\n"
                    "    timeout_ms: 2000\n" % (cls.ls.endpoint, REGION, cls.ls.key_file))
        cls.server = None
        cls.start_server()
        with open(os.path.join(cls.data, "admin.token")) as f:
            cls.api = Http("http://127.0.0.1:%d" % cls.port, f.read().strip())
        cls.s3 = cls.ls.s3()

    @classmethod
    def start_server(cls, config=None, port=None, data=None):
        port = port or cls.port
        d = start_photon_server(SERVER, config or cls.config, data or cls.data, port, cls.tmp)
        if port == cls.port:
            cls.server = d
        return d

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.stop()
        cls.ls.stop()

    # --- helpers -------------------------------------------------------------------------

    def create(self, doc, want=202):
        ns = doc["metadata"]["namespace"]
        code, body = self.api.call("POST", "/v1/namespaces/%s/buckets" % ns, doc)
        self.assertEqual(code, want, body)
        return body

    def get(self, ns, name):
        code, body = self.api.call("GET", "/v1/namespaces/%s/buckets/%s" % (ns, name))
        return body if code == 200 else None

    def delete(self, ns, name):
        code, body = self.api.call("DELETE", "/v1/namespaces/%s/buckets/%s" % (ns, name))
        self.assertEqual(code, 202, body)

    def update(self, ns, name, **spec):
        o = self.get(ns, name)
        o["spec"].update(spec)
        code, body = self.api.call("PUT", "/v1/namespaces/%s/buckets/%s" % (ns, name), o)
        self.assertEqual(code, 200, body)

    def wait_phase(self, ns, name, phase, contains="", timeout=15.0):
        def check():
            o = self.get(ns, name)
            if not o:
                return None
            st = o.get("status", {})
            ok = (st.get("phase") == phase and contains in st.get("message", "") and
                  st.get("observedGeneration") == o["metadata"].get("generation"))
            return o if ok else None
        return wait_until("buckets/%s/%s %s %r" % (ns, name, phase, contains), check, timeout)

    def exists(self, s3_name):
        try:
            self.s3.head_bucket(Bucket=s3_name)
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] in ("404", "NoSuchBucket"):
                return False
            raise

    def versioning(self, s3_name):
        return self.s3.get_bucket_versioning(Bucket=s3_name).get("Status", "")

    def rules(self, s3_name):
        try:
            cfg = self.s3.get_bucket_lifecycle_configuration(Bucket=s3_name)
        except ClientError as e:
            if e.response["Error"]["Code"] == "NoSuchLifecycleConfiguration":
                return []
            raise
        return sorted((r.get("Filter", {}).get("Prefix", r.get("Prefix", "")),
                       r["Expiration"]["Days"]) for r in cfg["Rules"])

    def photon(self, *args, stdin=None):
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.tmp,
               "PHOTON_SERVER": self.api.base, "PHOTON_TOKEN": self.api.token}
        return subprocess.run([PHOTON, *args], env=env, input=stdin, capture_output=True,
                              text=True, timeout=30, cwd=ROOT)

    def events(self, ns, reason):
        code, body = self.api.call("GET", "/v1/namespaces/%s/events" % ns)
        self.assertEqual(code, 200, body)
        return [e["spec"]["resourceEvent"] for e in body.get("items", [])
                if e["spec"].get("eventType") == reason]

    # --- tests (unittest runs them in name order; each uses its own buckets) --------------

    def test_1_create_update_delete(self):
        self.create(bucket("logs", versioning=True, rules=[("tmp/", 30)]))
        o = self.wait_phase("team-a", "logs", "RUNNING")
        d = o["status"]["details"]
        self.assertEqual((d["bucket"], d["endpoint"], d["region"]),
                         ("team-a-logs", self.ls.endpoint, REGION))
        self.assertIn("S3 bucket team-a-logs at " + self.ls.endpoint, o["status"]["message"])
        self.assertTrue(self.exists("team-a-logs"))
        r = self.ls.aws("s3api", "head-bucket", "--bucket", "team-a-logs")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.versioning("team-a-logs"), "Enabled")
        self.assertEqual(self.rules("team-a-logs"), [("tmp/", 30)])
        tags = self.s3.get_bucket_tagging(Bucket="team-a-logs")["TagSet"]
        self.assertIn({"Key": "photon:owner", "Value": "photon:buckets/team-a/logs"}, tags)

        # Through the CLI, as the README shows.
        doc = ("kind: Bucket\nmetadata:\n  name: photos\nspec:\n  versioningEnabled: false\n")
        r = self.photon("create", "-n", "team-a", "-f", "-", stdin=doc)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.wait_phase("team-a", "photos", "RUNNING", "versioning off")
        self.assertTrue(self.exists("team-a-photos"))
        self.assertEqual(self.versioning("team-a-photos"), "")
        self.assertEqual(self.rules("team-a-photos"), [])

        # Updates: versioning off (S3 calls it Suspended), the rules replaced, then none.
        self.update("team-a", "logs", versioningEnabled=False,
                    lifecycleRules=[{"prefix": "a/", "expirationDays": 1},
                                    {"prefix": "b/", "expirationDays": 7}])
        self.wait_phase("team-a", "logs", "RUNNING", "2 lifecycle rules")
        self.assertEqual(self.versioning("team-a-logs"), "Suspended")
        self.assertEqual(self.rules("team-a-logs"), [("a/", 1), ("b/", 7)])
        self.update("team-a", "logs", versioningEnabled=True, lifecycleRules=[])
        self.wait_phase("team-a", "logs", "RUNNING", "0 lifecycle rules")
        self.assertEqual(self.versioning("team-a-logs"), "Enabled")
        self.assertEqual(self.rules("team-a-logs"), [])
        # A change made behind photon's back is undone at the next resync (every 2 s here).
        self.s3.put_bucket_versioning(Bucket="team-a-logs",
                                      VersioningConfiguration={"Status": "Suspended"})
        wait_until("versioning restored", lambda: self.versioning("team-a-logs") == "Enabled")

        # Deleting empty buckets removes them.
        self.delete("team-a", "photos")
        self.delete("team-a", "logs")
        wait_until("team-a-photos gone", lambda: not self.exists("team-a-photos"))
        wait_until("team-a-logs gone", lambda: not self.exists("team-a-logs"))

    def test_2_delete_non_empty_keeps_data(self):
        self.create(bucket("data"))
        self.wait_phase("team-a", "data", "RUNNING")
        self.s3.put_object(Bucket="team-a-data", Key="report.txt", Body=b"keep me")
        self.delete("team-a", "data")
        self.assertIsNone(self.get("team-a", "data"))
        # The refusal is an Event in the namespace, saying what is kept and why.
        ev = wait_until("RemoveFailed event", lambda: self.events("team-a", "RemoveFailed"))
        self.assertEqual(ev[0]["name"], "buckets/team-a/data")
        self.assertIn("team-a-data", ev[0]["message"])
        self.assertIn("not empty", ev[0]["message"])
        time.sleep(2.5)  # retries and a resync pass: still there, data intact
        self.assertEqual(self.s3.get_object(Bucket="team-a-data", Key="report.txt")["Body"].read(),
                         b"keep me")
        self.assertEqual(len(self.events("team-a", "RemoveFailed")), 1)
        # Once its owner empties it, the retry removes it.
        self.s3.delete_object(Bucket="team-a-data", Key="report.txt")
        wait_until("team-a-data removed once empty", lambda: not self.exists("team-a-data"),
                   timeout=40)

    def test_3_names_regions_conflicts(self):
        long_name = "n" * 60
        self.create(bucket(long_name))
        o = self.wait_phase("team-a", long_name, "ERROR", "S3 allows 63")
        self.assertIn("team-a-" + long_name, o["status"]["message"])
        self.create(bucket("far", region="eu-west-1"))
        self.wait_phase("team-a", "far", "ERROR", "spec.region 'eu-west-1'")
        self.create(bucket("neg", rules=[("x/", 0)]))
        self.wait_phase("team-a", "neg", "ERROR", "spec.lifecycleRules[0].expirationDays")
        # A bucket made through S3 directly is not photon's.
        self.s3.create_bucket(Bucket="team-b-taken",
                              CreateBucketConfiguration={"LocationConstraint": REGION})
        self.create(bucket("taken", ns="team-b"))
        self.wait_phase("team-b", "taken", "ERROR", "not created by photon")
        # <namespace>-<name> is not one to one: the second claimant is told who has it.
        self.create(bucket("x-y", ns="team-a"))
        self.wait_phase("team-a", "x-y", "RUNNING")
        self.create(bucket("a-x-y", ns="team"))
        o = self.wait_phase("team", "a-x-y", "ERROR", "already taken by Bucket 'x-y'")
        self.assertIn("namespace 'team-a'", o["status"]["message"])
        # Deleting the refused objects leaves the buckets they never had.
        for ns, name in (("team-b", "taken"), ("team", "a-x-y")):
            self.delete(ns, name)
        time.sleep(1.5)
        self.assertTrue(self.exists("team-b-taken"))
        self.assertTrue(self.exists("team-a-x-y"))
        self.wait_phase("team-a", "x-y", "RUNNING")

    def test_4_lightningstor_down_then_back(self):
        self.ls.stop()
        try:
            self.create(bucket("late", versioning=True))
            o = self.wait_phase("team-a", "late", "CREATING", "unreachable")
            self.assertIn("retrying", o["status"]["message"])
            self.assertIn(self.ls.endpoint, o["status"]["message"])
        finally:
            self.ls.start()
        self.wait_phase("team-a", "late", "RUNNING", timeout=40)
        self.assertEqual(self.versioning("team-a-late"), "Enabled")

    def test_5_orphans_removed_after_restart(self):
        self.create(bucket("kept"))
        self.wait_phase("team-a", "kept", "RUNNING")
        self.server.stop()
        # While photon-server is down: a bucket photon made whose object is gone (a server
        # killed between the delete and the backend call), one an S3 user made, one another
        # photon cluster (owner tag "other") made, and a photon bucket still holding data.
        def make(name, owner=None):
            cfg = {"LocationConstraint": REGION}
            self.s3.create_bucket(Bucket=name, CreateBucketConfiguration=cfg)
            if owner:
                self.s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [
                    {"Key": "photon:owner", "Value": owner}]})
        make("team-a-ghost", "photon:buckets/team-a/ghost")
        make("team-a-plain")
        make("team-a-foreign", "other:buckets/team-a/foreign")
        make("team-a-full", "photon:buckets/team-a/full")
        self.s3.put_object(Bucket="team-a-full", Key="k", Body=b"v")
        self.start_server()
        wait_until("team-a-ghost removed", lambda: not self.exists("team-a-ghost"), timeout=20)
        ev = wait_until("RemoveFailed event for the full orphan",
                        lambda: [e for e in self.events("team-a", "RemoveFailed")
                                 if e["name"] == "buckets/team-a/full"])
        self.assertIn("not empty", ev[0]["message"])
        for name in ("team-a-plain", "team-a-foreign", "team-a-full", "team-a-kept"):
            self.assertTrue(self.exists(name), name)
        self.assertEqual(self.s3.get_object(Bucket="team-a-full", Key="k")["Body"].read(), b"v")
        self.wait_phase("team-a", "kept", "RUNNING")
        with urllib.request.urlopen(self.api.base + "/metrics", timeout=5) as r:
            self.assertIn('photon_provider_orphans_removed_total{kind="buckets"} 1',
                          r.read().decode())

    def applied(self):
        with urllib.request.urlopen(self.api.base + "/metrics", timeout=5) as r:
            text = r.read().decode()
        for line in text.splitlines():
            if line.startswith('photon_provider_reconciles_total{kind="buckets",result="applied"}'):
                return float(line.split()[-1])
        self.fail("no applied count in /metrics")

    def test_6_config_and_metrics(self):
        # Settled objects are applied once per resync (2 s here), not again on the watch event
        # of their own status write (status.details is a map: compared serialized
        # deterministically, or equal statuses look changed and loop).
        self.create(bucket("steady", versioning=True, rules=[("a/", 1)]))
        self.wait_phase("team-a", "steady", "RUNNING")
        code, body = self.api.call("GET", "/v1/buckets")
        self.assertEqual(code, 200, body)
        n = len(body["items"])
        before = self.applied()
        time.sleep(4.5)
        self.assertLessEqual(self.applied() - before, 3 * n, "%d objects" % n)
        # Unknown keys and a missing credentials_file are refused at start-up, named.
        for extra, want in (("    secret: x\n", "unknown key 'secret'"),
                            ("", "credentials_file: required")):
            bad = os.path.join(self.tmp, "bad.yaml")
            with open(bad, "w") as f:
                f.write("providers:\n  - driver: lightningstor\n    endpoint: %s\n%s" %
                        (self.ls.endpoint, extra))
            r = subprocess.run([SERVER, "--config", bad, "--data-dir",
                                os.path.join(self.tmp, "bad"), "--listen",
                                "127.0.0.1:%d" % harness.free_port(), "--grpc-listen",
                                "127.0.0.1:%d" % harness.free_port()],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(want, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
