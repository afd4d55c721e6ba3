"""restic (Debian's) as a real S3 user: init a repository in a versioned bucket, back a tree
up, check it (reading every pack back), restore it byte for byte, back up a change, forget and
prune the old snapshot, and see `restic check --read-data` fail on a pack changed behind
restic's back. restic encrypts client-side: no file's plaintext reaches lightningstor's disk."""
import filecmp
import os
import shutil
import subprocess
import unittest

import lsd


class ResticTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lsd.Daemon().start()
        cls.s3 = cls.d.client()
        cls.s3.create_bucket(Bucket="restic-b")
        cls.s3.put_bucket_versioning(Bucket="restic-b", VersioningConfiguration={"Status": "Enabled"})
        cls.src = os.path.join(cls.d.tmp, "src")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def restic(self, *args, check=True):
        # Only this repository's settings: the caller's AWS_* / RESTIC_* would change them.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
        env.update(RESTIC_REPOSITORY="s3:%s/restic-b/repo" % self.d.endpoint,
                   RESTIC_PASSWORD="correct horse battery staple",
                   AWS_ACCESS_KEY_ID=self.d.access_key, AWS_SECRET_ACCESS_KEY=self.d.secret_key,
                   AWS_DEFAULT_REGION=lsd.REGION, HOME=self.d.tmp)
        r = subprocess.run(["restic", "--no-cache", "--quiet", *args], env=env, capture_output=True,
                           text=True, timeout=120)
        if check:
            self.assertEqual(r.returncode, 0, (args, r.stderr[-3000:]))
        return r

    def write(self, rel, data):
        path = os.path.join(self.src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def assert_same_tree(self, a, b):
        cmp = filecmp.dircmp(a, b)
        self.assertEqual((cmp.left_only, cmp.right_only, cmp.diff_files), ([], [], []), a)
        for sub in cmp.common_dirs:
            self.assert_same_tree(os.path.join(a, sub), os.path.join(b, sub))
        # dircmp compares size and mtime only when they match; read the bytes.
        for name in cmp.common_files:
            self.assertTrue(filecmp.cmp(os.path.join(a, name), os.path.join(b, name), shallow=False), name)

    def restore(self, name):
        target = os.path.join(self.d.tmp, name)
        shutil.rmtree(target, ignore_errors=True)
        self.restic("restore", "latest", "--target", target)
        # restic restores the absolute path of what was backed up under the target.
        return os.path.join(target, self.src.lstrip("/"))

    def stored_files_contain(self, needle):
        return lsd.stored_files_contain(self.d.data_dir, needle)

    def test_backup_check_restore_prune(self):
        shutil.rmtree(self.src, ignore_errors=True)
        marker = b"RESTIC-PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
        self.write("notes.txt", marker * 100)
        self.write("dir/random.bin", os.urandom(9 * 1024 * 1024 + 5))
        self.write("dir/deep/empty", b"")
        self.restic("init")
        self.restic("backup", self.src)
        self.restic("check", "--read-data")
        self.assert_same_tree(self.src, self.restore("restore1"))
        self.assertFalse(self.stored_files_contain(marker))
        # A change and a deletion, a second snapshot; the first forgotten and pruned.
        self.write("notes.txt", b"changed\n")
        os.unlink(os.path.join(self.src, "dir/random.bin"))
        self.write("dir/other.bin", os.urandom(3 * 1024 * 1024))
        self.restic("backup", self.src)
        self.assertEqual(len(self.restic("snapshots", "--json").stdout.strip().split("},{")), 2)
        self.restic("forget", "--keep-last", "1", "--prune")
        self.restic("check", "--read-data")
        self.assert_same_tree(self.src, self.restore("restore2"))
        # Pruned packs were deleted: in the versioned bucket they are delete markers.
        versions = self.s3.list_object_versions(Bucket="restic-b", Prefix="repo/data/")
        self.assertTrue(versions.get("DeleteMarkers"))
        # A pack changed behind restic's back (same size): check --read-data finds it.
        packs = [o["Key"] for o in self.s3.list_objects_v2(Bucket="restic-b", Prefix="repo/data/")["Contents"]]
        self.assertTrue(packs)
        body = bytearray(self.s3.get_object(Bucket="restic-b", Key=packs[0])["Body"].read())
        body[len(body) // 2] ^= 0xFF
        self.s3.put_object(Bucket="restic-b", Key=packs[0], Body=bytes(body))
        r = self.restic("check", "--read-data", check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout[-2000:])


if __name__ == "__main__":
    unittest.main()
