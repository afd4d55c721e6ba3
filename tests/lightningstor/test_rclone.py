"""rclone (Debian's) as a real S3 user: sync a directory tree (with a multipart upload) to
lightningstor, check it, sync changes and deletions, and see `rclone check` fail on an object
changed behind its back."""
import os
import shutil
import subprocess
import unittest

import lsd


class RcloneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lsd.Daemon().start()
        cls.s3 = cls.d.client()
        cls.s3.create_bucket(Bucket="rclone-b")
        cls.src = os.path.join(cls.d.tmp, "src")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def rclone(self, *args, check=True):
        # Only this remote's settings: an AWS_* variable of the caller (a CA bundle, a profile)
        # would change how rclone talks to the endpoint.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        env.update(RCLONE_CONFIG=os.path.join(self.d.tmp, "rclone.conf"),
                   RCLONE_CONFIG_LS_TYPE="s3", RCLONE_CONFIG_LS_PROVIDER="Other",
                   RCLONE_CONFIG_LS_ACCESS_KEY_ID=self.d.access_key,
                   RCLONE_CONFIG_LS_SECRET_ACCESS_KEY=self.d.secret_key,
                   RCLONE_CONFIG_LS_ENDPOINT=self.d.endpoint, RCLONE_CONFIG_LS_REGION=lsd.REGION,
                   RCLONE_CONFIG_LS_FORCE_PATH_STYLE="true")
        # Multipart above 5 MiB, so the big file goes up in parts.
        cmd = ["rclone", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--retries", "1",
               "--low-level-retries", "1", *args]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        if check:
            self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        return r

    def write(self, rel, data):
        path = os.path.join(self.src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def keys(self):
        return sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket="rclone-b").get("Contents", []))

    def test_sync_check_and_detect_change(self):
        shutil.rmtree(self.src, ignore_errors=True)
        self.write("a.txt", b"alpha\n")
        self.write("dir/b.bin", os.urandom(100 * 1024))
        self.write("dir/deep/c", b"")
        self.write("big.bin", os.urandom(12 * 1024 * 1024 + 3))
        self.rclone("sync", self.src, "ls:rclone-b")
        self.assertEqual(self.keys(), ["a.txt", "big.bin", "dir/b.bin", "dir/deep/c"])
        self.assertIn("-", self.s3.head_object(Bucket="rclone-b", Key="big.bin")["ETag"])  # multipart
        self.rclone("check", self.src, "ls:rclone-b")
        # Changes and a deletion are synced.
        self.write("a.txt", b"alpha, changed\n")
        os.unlink(os.path.join(self.src, "dir/b.bin"))
        self.rclone("sync", self.src, "ls:rclone-b")
        self.assertEqual(self.keys(), ["a.txt", "big.bin", "dir/deep/c"])
        self.assertEqual(self.s3.get_object(Bucket="rclone-b", Key="a.txt")["Body"].read(), b"alpha, changed\n")
        self.rclone("check", self.src, "ls:rclone-b")
        # An object changed behind rclone's back (same size): check finds it.
        self.s3.put_object(Bucket="rclone-b", Key="a.txt", Body=b"ALPHA, CHANGED\n")
        r = self.rclone("check", self.src, "ls:rclone-b", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("a.txt", r.stderr)


if __name__ == "__main__":
    unittest.main()
