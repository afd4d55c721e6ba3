#!/usr/bin/env python3
"""The image service end to end (docs/images.md): a real lightningstor, photon-server with its
`lightningstor` provider entry, a photon-agent with the vm driver (TCG) and the photon CLI.

  - a kernel and an initrd uploaded with `photon image upload` boot a VM on a node that never
    had them (its image cache starts empty);
  - a damaged cached copy is detected when the next instance needs it and fetched again;
  - an editor cannot read another namespace's private image; an admin shares it publicly,
    and then every namespace can use it and its own editors can no longer replace it;
  - bad input (wrong digest, unknown format, oversized) is refused naming the problem;
  - the cache is emptied once no instance holds its files.
Every process is stopped at the end; every wait is bounded.

usage: images_test.py BUILD_DIR"""
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

BUILD = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else "build")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "flashdns"))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
import harness  # noqa: E402
from provider_harness import Http, start_photon_server, wait_until  # noqa: E402

SERVER = os.path.join(BUILD, "src/server/photon-server")
AGENT = os.path.join(BUILD, "src/agent/photon-agent")
LIGHTNINGSTOR = os.path.join(BUILD, "src/lightningstor/lightningstor")
PHOTON = os.path.join(BUILD, "src/cli/photon")
MAX_IMAGE = 32 << 20  # the server's image_max_bytes in this test


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ImageServiceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = harness.make_tmp("photon-images-")
        cls.daemons = []
        try:
            cls._start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls):
        tmp = cls.tmp
        out = subprocess.run([os.path.join(ROOT, "scripts/make-vm-image.sh"), tmp + "/guest"],
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stdout + out.stderr
        cls.kernel, cls.initrd = tmp + "/guest/vmlinuz", tmp + "/guest/initrd.img"
        # lightningstor and its key for photon-server (0600).
        s3_port = harness.free_port()
        with open(tmp + "/ls.yaml", "w") as f:
            f.write("listen: 127.0.0.1:%d\ndata_dir: %s/ls\nregion: local\nlog_level: warn\n"
                    % (s3_port, tmp))
        key = subprocess.run([LIGHTNINGSTOR, "--config", tmp + "/ls.yaml", "keys", "create",
                              "photon"], check=True, capture_output=True, text=True,
                             timeout=30).stdout
        cls.s3_key = dict(line.split(": ", 1) for line in key.strip().splitlines())
        cls.s3_port = s3_port
        fd = os.open(tmp + "/ls.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        ls = harness.Daemon([LIGHTNINGSTOR, "--config", tmp + "/ls.yaml"], tmp + "/ls.log")
        cls.daemons.append(ls)
        wait_until("lightningstor", lambda: cls._healthy("http://127.0.0.1:%d" % s3_port))
        # photon-server with the lightningstor provider (also the image store).
        with open(tmp + "/server.yaml", "w") as f:
            f.write("image_max_bytes: %d\nproviders:\n  - driver: lightningstor\n"
                    "    endpoint: http://127.0.0.1:%d\n    region: local\n"
                    "    credentials_file: %s/ls.key\n" % (MAX_IMAGE, s3_port, tmp))
        cls.port = harness.free_port()
        cls.daemons.append(start_photon_server(SERVER, tmp + "/server.yaml", tmp + "/server",
                                               cls.port, tmp))
        with open(tmp + "/server/admin.token") as f:
            cls.admin = f.read().strip()
        cls.api = Http("http://127.0.0.1:%d" % cls.port, cls.admin)
        # One VM node; its image cache forgets unheld files after 3 s.
        with open(tmp + "/agent.yaml", "w") as f:
            f.write('drivers:\n  vm:\n    ready_timeout_s: "240"\n    images_root: "%s/none"\n'
                    '  container:\n    enabled: "false"\n  images:\n    cache_ttl_s: "3"\n' % tmp)
        os.makedirs(tmp + "/none")
        cls.agent_dir = tmp + "/agent"
        cls.daemons.append(harness.Daemon(
            [AGENT, "--server", "127.0.0.1:%d" % cls.port, "--token-file",
             tmp + "/server/join.token", "--data-dir", cls.agent_dir, "--name", "imgnode",
             "--config", tmp + "/agent.yaml", "--resync-seconds", "1", "--heartbeat-seconds",
             "1", "--network-mode", "shared", "--vcpu", "8"], tmp + "/agent.log"))
        wait_until("node imgnode", lambda: cls.api.call(
            "GET", "/v1/namespaces/system/nodes/imgnode")[0] == 200, timeout=60)
        cls.editor_a = cls._token("alice", "team-a")
        cls.editor_b = cls._token("bob", "team-b")

    @classmethod
    def tearDownClass(cls):
        for d in reversed(cls.daemons):
            d.stop()
        # QEMU processes a failed test left behind (the agent leaves VMs running when it stops).
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if (cls.tmp + "/agent/").encode() in f.read():
                        os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @staticmethod
    def _healthy(url):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return True
        except OSError:
            return False

    @classmethod
    def _token(cls, principal, ns):
        r = cls.photon_as(cls.admin, "token", "create", "--principal", principal, "--role",
                          "editor", "-n", ns)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    @classmethod
    def photon_as(cls, token, *args, timeout=120):
        env = {"PATH": os.environ.get("PATH", ""), "HOME": cls.tmp,
               "PHOTON_SERVER": "http://127.0.0.1:%d" % cls.port, "PHOTON_TOKEN": token}
        return subprocess.run([PHOTON, *args], env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=cls.tmp)

    def cache_files(self):
        d = self.agent_dir + "/images/sha256"
        return sorted(n for n in os.listdir(d) if not n.startswith(".")) if os.path.isdir(d) else []

    def create_vm(self, ns, name, kernel, initrd):
        status, body = self.api.call("POST", "/v1/namespaces/%s/computeinstances" % ns, {
            "kind": "ComputeInstance", "metadata": {"name": name},
            "spec": {"vm": {"kernel": kernel, "initrd": initrd,
                            "kernelArgs": "console=ttyS0 quiet"},
                     "resources": {"vcpu": 1, "memoryMb": "256"},
                     "network": {"hostNetwork": True}}})
        self.assertLess(status, 300, body)

    def wait_phase(self, ns, name, want, timeout=300):
        def phase():
            s, obj = self.api.call("GET", "/v1/namespaces/%s/computeinstances/%s" % (ns, name))
            p = obj.get("status", {}).get("phase", "") if s == 200 else ""
            if p == "ERROR" and want != "ERROR":
                raise AssertionError("%s ERROR: %s\n%s" % (name, obj, self.agent_log()[-3000:]))
            return obj if p == want else None
        return wait_until("%s/%s %s" % (ns, name, want), phase, timeout=timeout)

    def delete_vm(self, ns, name):
        self.api.call("DELETE", "/v1/namespaces/%s/computeinstances/%s" % (ns, name))
        wait_until("%s deleted" % name, lambda: self.api.call(
            "GET", "/v1/namespaces/%s/computeinstances/%s" % (ns, name))[0] == 404, timeout=120)

    def agent_log(self):
        with open(self.tmp + "/agent.log", errors="replace") as f:
            return f.read()

    def upload(self, token, ns, name, path, *extra):
        return self.photon_as(token, "image", "upload", name, path, "-n", ns, *extra)

    def test_1_uploaded_kernel_and_initrd_boot_a_vm_on_a_fresh_node(self):
        self.assertEqual(self.cache_files(), [])  # the node never had them
        for name, path in (("kernel", self.kernel), ("initrd", self.initrd)):
            r = self.upload(self.editor_a, "team-a", name, path)
            self.assertEqual(r.returncode, 0, r.stderr)
            digest = sha256_file(path)
            self.assertIn("sha256 " + digest, r.stdout)
            # Piped: progress as plain lines, ending at 100 %.
            self.assertIn("upload %s: 100%%" % name, r.stderr)
            self.assertNotIn("\r", r.stderr)
            s, img = self.api.call("GET", "/v1/namespaces/team-a/images/" + name)
            self.assertEqual(s, 200, img)
            self.assertEqual(img["spec"]["sha256"], digest)
            self.assertEqual(img["spec"]["format"], name)
            self.assertEqual(img["spec"].get("sourcePath", ""), "")
            self.assertEqual(img["status"]["details"]["sha256"], digest)
            self.assertEqual(img["status"]["details"]["sizeBytes"], str(os.path.getsize(path)))
        self.create_vm("team-a", "vm1", "kernel", "initrd")
        obj = self.wait_phase("team-a", "vm1", "RUNNING")
        with open("%s/providers/vm/instances/%s/console.log" %
                  (self.agent_dir, obj["metadata"]["id"]), errors="replace") as f:
            console = f.read()
        self.assertIn("PHOTON-READY", console)
        want = sorted([sha256_file(self.kernel), sha256_file(self.initrd)])
        self.assertEqual(self.cache_files(), want)
        for d in want:
            st = os.stat(self.agent_dir + "/images/sha256/" + d)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o444)
            self.assertEqual(st.st_nlink, 2)  # the cache's name and vm1's link
        self.assertIn("image cache: fetched team-a/kernel", self.agent_log())

    def test_2_a_damaged_cached_copy_is_fetched_again(self):
        digest = sha256_file(self.initrd)
        cached = self.agent_dir + "/images/sha256/" + digest
        self.assertTrue(os.path.exists(cached), "vm1 holds the initrd")
        os.chmod(cached, 0o644)
        with open(cached, "r+b") as f:
            f.seek(1000)
            f.write(b"\x00" * 64)
        os.chmod(cached, 0o444)
        self.assertNotEqual(sha256_file(cached), digest)
        self.create_vm("team-a", "vm2", "kernel", "initrd")
        self.wait_phase("team-a", "vm2", "RUNNING")
        log = self.agent_log()
        self.assertIn("image cache: %s (team-a/initrd) is damaged" % cached, log)
        self.assertEqual(log.count("image cache: fetched team-a/initrd"), 2, log[-2000:])
        self.assertEqual(log.count("image cache: fetched team-a/kernel"), 1)  # verified, kept
        self.assertEqual(sha256_file(cached), digest)

    def test_3_private_images_stay_in_their_namespace_until_an_admin_shares_them(self):
        # bob, editor of team-b, can neither read team-a's image nor its content.
        s, _ = Http(self.api.base, self.editor_b).call("GET", "/v1/namespaces/team-a/images/kernel")
        self.assertIn(s, (403, 404))
        r = self.photon_as(self.editor_b, "image", "download", "kernel", self.tmp + "/k", "-n",
                           "team-a")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("images team-a/kernel not found", r.stderr)
        self.assertFalse(os.path.exists(self.tmp + "/k"))
        # ...nor boot it from team-b.
        self.create_vm("team-b", "borrow", "team-a/kernel", "team-a/initrd")
        last = {}

        def refused():
            last["obj"] = self.api.call("GET", "/v1/namespaces/team-b/computeinstances/borrow")[1]
            return "not shared publicly" in str(last["obj"])
        try:
            wait_until("borrow refused", refused, timeout=90)
        except AssertionError:
            self.fail("borrow: %s\n%s" % (last.get("obj"), self.agent_log()[-3000:]))
        self.delete_vm("team-b", "borrow")
        # Only an admin shares.
        r = self.photon_as(self.editor_a, "image", "share", "kernel", "--public", "-n", "team-a")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("only cluster admins", r.stderr)
        for name in ("kernel", "initrd"):
            r = self.photon_as(self.admin, "image", "share", name, "--public", "-n", "team-a")
            self.assertEqual(r.returncode, 0, r.stderr)
        r = self.photon_as(self.editor_b, "image", "download", "kernel", self.tmp + "/k", "-n",
                           "team-a")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256_file(self.tmp + "/k"), sha256_file(self.kernel))
        # A public image is changed by admins only, also by its own namespace's editors.
        r = self.upload(self.editor_a, "team-a", "kernel", self.initrd, "--format", "kernel")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is public: only cluster admins may replace it", r.stderr)
        # ... nor through the generic API: its spec cannot be changed nor the image deleted.
        owner = Http(self.api.base, self.editor_a)
        s, img = owner.call("GET", "/v1/namespaces/team-a/images/kernel")
        self.assertEqual(s, 200, img)
        img["metadata"]["labels"] = {"swapped": "yes"}
        s, body = owner.call("PUT", "/v1/namespaces/team-a/images/kernel", img)
        self.assertEqual(s, 403, body)
        self.assertIn("shared with every namespace", str(body))
        s, body = owner.call("DELETE", "/v1/namespaces/team-a/images/kernel")
        self.assertEqual(s, 403, body)
        s, _ = owner.call("GET", "/v1/namespaces/team-a/images/kernel")
        self.assertEqual(s, 200)

    def test_4_bad_input_is_refused_with_a_clear_error(self):
        r = self.upload(self.editor_a, "team-a", "k2", self.kernel, "--sha256", "0" * 64)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("sha256 mismatch: the client said " + "0" * 64, r.stderr)
        self.assertEqual(self.api.call("GET", "/v1/namespaces/team-a/images/k2")[0], 404)
        r = self.upload(self.editor_a, "team-a", "k2", self.kernel, "--format", "iso")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("format 'iso': want one of qcow2, raw, kernel, initrd, rootfs-tar", r.stderr)
        blob = self.tmp + "/blob.bin"
        with open(blob, "wb") as f:
            f.truncate(MAX_IMAGE + 1)
        r = self.upload(self.editor_a, "team-a", "k2", blob)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot tell the format of", r.stderr)
        r = self.upload(self.editor_a, "team-a", "k2", blob, "--format", "raw")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("an image of %d bytes exceeds this server's image_max_bytes (%d)" %
                      (MAX_IMAGE + 1, MAX_IMAGE), r.stderr)
        # A client that sends more than it declared is cut off.
        s, up = Http(self.api.base, self.editor_a).call(
            "POST", "/v1/namespaces/team-a/images/k2/upload?format=raw&size=4")
        self.assertEqual(s, 201, up)
        req = urllib.request.Request(
            "%s/v1/namespaces/team-a/images/k2/upload/%s?offset=0" % (self.api.base,
                                                                   up["uploadId"]),
            data=b"12345", method="PUT", headers={"Authorization": "Bearer " + self.editor_a})
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        self.assertIn("more bytes than the declared size 4", e.exception.read().decode())

    def test_5_the_cache_forgets_what_no_instance_holds(self):
        self.assertEqual(len(self.cache_files()), 2)
        self.delete_vm("team-a", "vm1")
        self.delete_vm("team-a", "vm2")
        wait_until("cache emptied", lambda: self.cache_files() == [], timeout=60)
        self.assertIn("image cache: removed", self.agent_log())

    def test_6_deleting_an_image_deletes_its_content_in_lightningstor(self):
        import boto3
        from botocore.config import Config
        s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:%d" % self.s3_port,
                          region_name="local", aws_access_key_id=self.s3_key["access_key_id"],
                          aws_secret_access_key=self.s3_key["secret_access_key"],
                          config=Config(s3={"addressing_style": "path"}))

        def keys():
            r = s3.list_objects_v2(Bucket="photon-images")
            return sorted(o["Key"] for o in r.get("Contents", []))
        s, img = self.api.call("GET", "/v1/namespaces/team-a/images/initrd")
        self.assertEqual(s, 200, img)
        key = img["status"]["details"]["object"]
        self.assertIn(key, keys())
        self.assertEqual(self.api.call("DELETE", "/v1/namespaces/team-a/images/initrd")[0], 202)
        wait_until("content deleted", lambda: key not in keys(), timeout=30)
        self.assertEqual(len(keys()), 1)  # the kernel's


if __name__ == "__main__":
    unittest.main(verbosity=2)
