"""The Debian awscli against a real daemon: high-level s3 commands (mb, cp incl. multipart,
ls, sync, rm, rb, presign) and s3api calls, including the S3 errors it must surface."""
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import lsd


if not shutil.which("aws"):
    print("SKIPPING the awscli suite LOUDLY: the 'aws' command is not installed (apt-get install awscli)",
          file=sys.stderr)


@unittest.skipUnless(shutil.which("aws"), "awscli is not installed")
class AwsCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lsd.Daemon().start()
        cls.work = tempfile.mkdtemp(prefix="lightningstor-cli-")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        subprocess.run(["rm", "-rf", cls.work])

    def aws(self, *args, check=True, env=None):
        cmd = ["aws", "--endpoint-url", self.d.endpoint] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env or self.d.env())
        if check and p.returncode != 0:
            self.fail(f"{' '.join(args)} failed: {p.stderr}")
        return p

    def test_encrypted_multipart_cp(self):
        """aws s3 cp of a multipart-sized file with SSE-S3 and with SSE-C (a key file), and back."""
        self.aws("s3", "mb", "s3://cli-sse")
        big = os.path.join(self.work, "sse-big.bin")
        marker = b"CLI-SSE-MULTIPART-PLAINTEXT "
        with open(big, "wb") as f:
            f.write(marker + os.urandom(17 * 1024 * 1024))  # above the 8 MiB multipart threshold
        key = os.path.join(self.work, "sse-c.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        sse_c = ["--sse-c", "AES256", "--sse-c-key", "fileb://" + key]
        self.aws("s3", "cp", "--sse", "AES256", big, "s3://cli-sse/s3.bin")
        self.aws("s3", "cp", *sse_c, big, "s3://cli-sse/c.bin")
        head = self.aws("s3api", "head-object", "--bucket", "cli-sse", "--key", "s3.bin").stdout
        self.assertIn('"ServerSideEncryption": "AES256"', head)
        self.assertIn('-3\\"', head)  # multipart ETag
        self.assertNotEqual(self.aws("s3api", "head-object", "--bucket", "cli-sse", "--key", "c.bin",
                                     check=False).returncode, 0)  # no key: refused
        for name, extra in (("s3.bin", []), ("c.bin", sse_c)):
            back = os.path.join(self.work, "sse-back-" + name)
            self.aws("s3", "cp", *extra, "s3://cli-sse/" + name, back)
            self.assertTrue(filecmp.cmp(big, back, shallow=False), name)
        for root, _, files in os.walk(self.d.data_dir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    self.assertNotIn(marker, fh.read(), f)

    def test_high_level_commands(self):
        self.aws("s3", "mb", "s3://cli-bucket")
        big = os.path.join(self.work, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(21 * 1024 * 1024 + 5))  # above the 8 MiB multipart threshold
        self.aws("s3", "cp", big, "s3://cli-bucket/data/big.bin")
        head = self.aws("s3api", "head-object", "--bucket", "cli-bucket", "--key", "data/big.bin").stdout
        self.assertIn('-3\\"', head)  # multipart ETag: md5-of-md5s-3
        back = os.path.join(self.work, "back.bin")
        self.aws("s3", "cp", "s3://cli-bucket/data/big.bin", back)
        self.assertTrue(filecmp.cmp(big, back, shallow=False))

        tree = os.path.join(self.work, "tree")
        for rel in ("a.txt", "sub/b.txt", "sub/deeper/c.txt"):
            os.makedirs(os.path.dirname(os.path.join(tree, rel)), exist_ok=True)
            with open(os.path.join(tree, rel), "w") as f:
                f.write(rel * 10)
        self.aws("s3", "sync", tree, "s3://cli-bucket/tree")
        ls = self.aws("s3", "ls", "s3://cli-bucket/tree/").stdout
        self.assertIn("PRE sub/", ls)
        self.assertIn("a.txt", ls)
        rec = self.aws("s3", "ls", "--recursive", "s3://cli-bucket/tree/").stdout
        self.assertEqual(len(rec.strip().splitlines()), 3)
        out = os.path.join(self.work, "synced")
        self.aws("s3", "sync", "s3://cli-bucket/tree", out)
        self.assertTrue(filecmp.cmp(os.path.join(tree, "sub/deeper/c.txt"), os.path.join(out, "sub/deeper/c.txt"), shallow=False))

        url = self.aws("s3", "presign", "s3://cli-bucket/tree/a.txt", "--expires-in", "60").stdout.strip()
        self.assertEqual(urllib.request.urlopen(url, timeout=10).read().decode(), "a.txt" * 10)

        self.aws("s3", "rm", "--recursive", "s3://cli-bucket/")
        self.aws("s3", "rb", "s3://cli-bucket")
        self.assertNotIn("cli-bucket", self.aws("s3", "ls").stdout)

    def test_s3api_and_errors(self):
        self.aws("s3api", "create-bucket", "--bucket", "api-bucket")
        body = os.path.join(self.work, "small.txt")
        with open(body, "w") as f:
            f.write("hello")
        self.aws("s3api", "put-object", "--bucket", "api-bucket", "--key", "k", "--body", body,
                 "--metadata", "owner=me")
        out = self.aws("s3api", "get-object", "--bucket", "api-bucket", "--key", "k", "--range", "bytes=1-3",
                       os.path.join(self.work, "range.out")).stdout
        self.assertIn('"owner": "me"', out)
        self.assertEqual(open(os.path.join(self.work, "range.out")).read(), "ell")
        self.aws("s3api", "copy-object", "--bucket", "api-bucket", "--key", "k2", "--copy-source", "api-bucket/k")
        listing = self.aws("s3api", "list-objects-v2", "--bucket", "api-bucket").stdout
        self.assertIn('"k2"', listing)

        p = self.aws("s3api", "create-bucket", "--bucket", "Bad_Name", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("InvalidBucketName", p.stderr)
        p = self.aws("s3api", "get-object", "--bucket", "api-bucket", "--key", "nope", "/dev/null", check=False)
        self.assertIn("NoSuchKey", p.stderr)
        p = self.aws("s3api", "delete-bucket", "--bucket", "api-bucket", check=False)
        self.assertIn("BucketNotEmpty", p.stderr)
        env = self.d.env()
        env["AWS_SECRET_ACCESS_KEY"] = "wrong" * 8
        p = self.aws("s3api", "list-buckets", check=False, env=env)
        self.assertIn("SignatureDoesNotMatch", p.stderr)
        env = self.d.env()
        env["AWS_DEFAULT_REGION"] = "ap-south-1"
        p = self.aws("s3api", "list-objects-v2", "--bucket", "api-bucket", check=False, env=env)
        self.assertIn("AuthorizationHeaderMalformed", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
