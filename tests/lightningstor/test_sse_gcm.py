"""Authenticated encryption at rest (format 2: AES-256-GCM per 1 MiB block), through boto3
against the real daemon. The tampering cases change the stored bytes the way someone with the
data dir could: a byte flipped in a blob with the block's CRC-32C in the metadata DB made to
match (so the CRC does not catch it, only the GCM tag can), two blocks swapped (CRCs swapped
too), a blob cut short, an inline object's bytes changed with its CRC. Each must fail the GET
(whole, and a range in that block) with a log line naming the object and never hand out
altered bytes, while ranges in the other blocks still read. Objects written in the old format 1
(AES-256-CTR; made by a daemon with `sse_write_format: ctr-legacy`) must still read after the
upgrade, including an upload begun before it and completed after (a mixed object)."""
import base64
import os
import sqlite3
import unittest

import awscrt.checksums
from botocore.exceptions import ClientError

import lsd

MIB = 1 << 20
SSE_C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": os.urandom(32)}


def status(exc):
    return exc.exception.response["ResponseMetadata"]["HTTPStatusCode"]


def same(a, b):
    """Big bodies compared by length and a prefix (a failing diff of MiBs would take ages)."""
    return (len(a), a == b)


class SseGcmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Old data first: a daemon writing format 1, as lightningstor did before format 2.
        cls.d = lsd.Daemon(extra_config={"sse_write_format": "ctr-legacy"}).start()
        s3 = cls.s3 = cls.d.client()
        s3.create_bucket(Bucket="gcm")
        cls.plain = {}
        cls.put("old-s3", os.urandom(3 * MIB + 5), ServerSideEncryption="AES256")
        cls.put("old-c", os.urandom(2 * MIB + 7), **SSE_C)
        cls.put("old-inline", os.urandom(1000), ServerSideEncryption="AES256")
        p1, p2 = os.urandom(5 * MIB), os.urandom(MIB + 3)
        uid = s3.create_multipart_upload(Bucket="gcm", Key="old-mp", ServerSideEncryption="AES256")["UploadId"]
        parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket="gcm", Key="old-mp", UploadId=uid, PartNumber=n,
                                                          Body=p)["ETag"]} for n, p in ((1, p1), (2, p2))]
        s3.complete_multipart_upload(Bucket="gcm", Key="old-mp", UploadId=uid, MultipartUpload={"Parts": parts})
        cls.plain["old-mp"] = p1 + p2
        # An upload begun before the upgrade: part 1 in format 1, part 2 sent after it.
        cls.mixed_uid = s3.create_multipart_upload(Bucket="gcm", Key="mixed", **SSE_C)["UploadId"]
        cls.mixed_p1 = os.urandom(5 * MIB)
        cls.mixed_e1 = s3.upload_part(Bucket="gcm", Key="mixed", UploadId=cls.mixed_uid, PartNumber=1,
                                      Body=cls.mixed_p1, **SSE_C)["ETag"]
        # The upgrade: the same data dir under a daemon writing format 2.
        cls.restart({})

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def setUp(self):
        self.s3 = self.d.client()  # a tampering test restarts the daemon on a new port

    def tearDown(self):
        self.s3.close()

    @classmethod
    def put(cls, key, data, **kwargs):
        client = cls.d.client()
        client.put_object(Bucket="gcm", Key=key, Body=data, **kwargs)
        client.close()
        cls.plain[key] = data

    @classmethod
    def restart(cls, extra=None):
        cls.d.stop(cleanup=False)
        if extra is not None:
            cls.d.extra = extra
            cls.d._write_config()
        cls.d.start()
        cls.s3 = cls.d.client()

    def row(self, key):
        with sqlite3.connect(os.path.join(self.d.data_dir, "meta.db")) as db:
            return db.execute("SELECT id, segments, data, data_crc FROM objects WHERE bucket = 'gcm' AND key = ? "
                              "AND is_latest = 1", (key,)).fetchone()

    def blob_path(self, segment_line):
        blob = segment_line.split(" ")[0]
        return os.path.join(self.d.data_dir, "blobs", blob[:2], blob)

    def tamper_blob(self, key, change):
        """With the daemon stopped: change(bytearray) edits the single-segment object's blob,
        then every block's CRC-32C in the DB is made to match the new bytes."""
        self.d.stop(cleanup=False)
        rowid, segments, _, _ = self.row(key)
        fields = segments.strip("\n").split(" ")
        path = self.blob_path(segments)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        change(data)
        with open(path, "wb") as f:
            f.write(data)
        crcs = b"".join(awscrt.checksums.crc32c(bytes(data[i:i + MIB])).to_bytes(4, "big")
                        for i in range(0, len(data), MIB))
        fields[2] = base64.b64encode(crcs).decode()
        with sqlite3.connect(os.path.join(self.d.data_dir, "meta.db")) as db:
            db.execute("UPDATE objects SET segments = ? WHERE id = ?", (" ".join(fields) + "\n", rowid))
        self.d.start()
        self.s3 = self.d.client()

    def get(self, key, rng=None, **kwargs):
        extra = {"Range": "bytes=%d-%d" % rng} if rng else {}
        return self.s3.get_object(Bucket="gcm", Key=key, **extra, **kwargs)["Body"].read()

    def assert_get_fails(self, key, plain, **kwargs):
        """The whole GET fails: refused, or its stream cut after good blocks only."""
        got = b""
        with self.assertRaises(Exception):
            body = self.s3.get_object(Bucket="gcm", Key=key, **kwargs)["Body"]
            for chunk in body.iter_chunks(64 << 10):
                got += chunk
            body.close()
        self.assertEqual(got, plain[:len(got)], "altered bytes were sent")

    def assert_range_fails(self, key, rng, **kwargs):
        with self.assertRaises(ClientError) as e:
            self.get(key, rng, **kwargs)
        self.assertEqual(status(e), 500)

    def assert_logged(self, key):
        self.assertIn("tampering: object gcm/%s" % key, self.d.read_log())

    # --- format 2 is what new objects get -------------------------------------------------

    def test_new_objects_are_format_2(self):
        data = os.urandom(2 * MIB + 100)
        self.put("new-s3", data, ServerSideEncryption="AES256")
        self.assertIn(" g2:", self.row("new-s3")[1])
        self.assertNotIn(" g2:", self.row("old-s3")[1])
        self.assertEqual(same(self.get("new-s3"), data), (len(data), True))
        for rng in ((0, 0), (MIB - 3, MIB + 3), (2 * MIB + 99, 2 * MIB + 99), (5, 2 * MIB + 50)):
            self.assertEqual(self.get("new-s3", rng), data[rng[0]:rng[1] + 1], rng)
        # A copy out of it (decrypted) and into SSE-C (encrypted again, format 2).
        self.s3.copy_object(Bucket="gcm", Key="new-copy", CopySource="gcm/new-s3", **SSE_C)
        self.assertIn(" g2:", self.row("new-copy")[1])
        self.assertEqual(same(self.get("new-copy", **SSE_C), data), (len(data), True))
        # SSE-C is still refused without its key, and with another key.
        with self.assertRaises(ClientError) as e:
            self.get("new-copy")
        self.assertEqual(status(e), 400)
        with self.assertRaises(ClientError) as e:
            self.get("new-copy", SSECustomerAlgorithm="AES256", SSECustomerKey=os.urandom(32))
        self.assertEqual(status(e), 403)

    def test_multipart_ranges_across_parts(self):
        s3 = self.s3
        p1, p2, src = os.urandom(5 * MIB + 11), os.urandom(5 * MIB), os.urandom(2 * MIB)
        self.put("mp-src", src, ServerSideEncryption="AES256")
        uid = s3.create_multipart_upload(Bucket="gcm", Key="mp", ServerSideEncryption="AES256")["UploadId"]
        e1 = s3.upload_part(Bucket="gcm", Key="mp", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
        e2 = s3.upload_part(Bucket="gcm", Key="mp", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
        e3 = s3.upload_part_copy(Bucket="gcm", Key="mp", UploadId=uid, PartNumber=3, CopySource="gcm/mp-src",
                                 CopySourceRange="bytes=7-%d" % (MIB + 20))["CopyPartResult"]["ETag"]
        s3.complete_multipart_upload(Bucket="gcm", Key="mp", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e3}]})
        p3 = src[7:MIB + 21]
        whole = p1 + p2 + p3
        self.assertEqual(self.row("mp")[1].count(" g2:"), 3)
        self.assertEqual(same(self.get("mp"), whole), (len(whole), True))
        for a, b in ((len(p1) - 5, len(p1) + 5), (len(p1) - MIB, len(p1) + len(p2) + 100),
                     (len(p1) + len(p2) - 1, len(p1) + len(p2)), (MIB + 1, MIB + 1)):
            self.assertEqual(same(self.get("mp", (a, b)), whole[a:b + 1]), (b - a + 1, True), (a, b))
        for n, p in ((1, p1), (2, p2), (3, p3)):
            self.assertEqual(same(self.get("mp", PartNumber=n), p), (len(p), True), n)

    # --- tampering --------------------------------------------------------------------------

    def test_flipped_byte_fails_its_block_only(self):
        data = os.urandom(3 * MIB + 100)
        self.put("flip", data, ServerSideEncryption="AES256")

        def flip(blob):
            blob[MIB + MIB // 2] ^= 0x01
        self.tamper_blob("flip", flip)
        self.assert_get_fails("flip", data)
        self.assert_range_fails("flip", (MIB + 10, MIB + 20))
        self.assert_range_fails("flip", (MIB - 10, MIB + 10))  # touches the block
        self.assert_logged("flip")
        # The other blocks still read.
        for rng in ((0, MIB - 1), (2 * MIB, 3 * MIB + 99), (3 * MIB, 3 * MIB + 5)):
            self.assertEqual(self.get("flip", rng), data[rng[0]:rng[1] + 1], rng)

    def test_swapped_blocks_fail(self):
        data = os.urandom(3 * MIB)
        self.put("swap", data, **SSE_C)

        def swap(blob):
            blob[0:MIB], blob[MIB:2 * MIB] = blob[MIB:2 * MIB], blob[0:MIB]
        self.tamper_blob("swap", swap)
        self.assert_range_fails("swap", (0, 10), **SSE_C)
        self.assert_range_fails("swap", (MIB, MIB + 10), **SSE_C)
        self.assertEqual(self.get("swap", (2 * MIB, 3 * MIB - 1), **SSE_C), data[2 * MIB:])
        self.assert_logged("swap")

    def test_truncated_blob_fails(self):
        data = os.urandom(2 * MIB + 500)
        self.put("cut", data, ServerSideEncryption="AES256")

        def cut(blob):
            del blob[-300:]
        self.tamper_blob("cut", cut)
        self.assert_get_fails("cut", data)
        self.assert_range_fails("cut", (2 * MIB, 2 * MIB + 10))
        self.assertEqual(self.get("cut", (0, MIB - 1)), data[:MIB])

    def test_inline_object_tampered_fails(self):
        data = os.urandom(3000)
        self.put("inline", data, ServerSideEncryption="AES256")
        self.assertEqual(self.get("inline"), data)
        self.d.stop(cleanup=False)
        rowid, _, stored, _ = self.row("inline")
        self.assertEqual(len(stored), len(data) + 16)  # the bytes and their tag
        changed = bytearray(stored)
        changed[100] ^= 0x80
        with sqlite3.connect(os.path.join(self.d.data_dir, "meta.db")) as db:
            db.execute("UPDATE objects SET data = ?, data_crc = ? WHERE id = ?",
                       (bytes(changed), awscrt.checksums.crc32c(bytes(changed)), rowid))
        self.d.start()
        self.s3 = self.d.client()
        self.assert_range_fails("inline", (0, 10))
        with self.assertRaises(ClientError) as e:
            self.get("inline")
        self.assertEqual(status(e), 500)
        self.assert_logged("inline")

    # --- format 1 (written before) still reads ----------------------------------------------

    def test_old_format_objects_read(self):
        for key, kwargs in (("old-s3", {}), ("old-c", SSE_C), ("old-inline", {}), ("old-mp", {})):
            data = self.plain[key]
            self.assertEqual(same(self.get(key, **kwargs), data), (len(data), True), key)
            for a, b in ((1, 1), (len(data) // 2 - 3, len(data) // 2 + MIB), (len(data) - 1, len(data) - 1)):
                self.assertEqual(self.get(key, (a, b), **kwargs), data[a:b + 1], (key, a, b))
        self.assertNotIn(" g2:", self.row("old-mp")[1])
        with self.assertRaises(ClientError) as e:
            self.get("old-c")
        self.assertEqual(status(e), 400)
        # Copying an old object makes a format 2 one.
        self.s3.copy_object(Bucket="gcm", Key="old-copied", CopySource="gcm/old-s3", ServerSideEncryption="AES256")
        self.assertIn(" g2:", self.row("old-copied")[1])
        self.assertEqual(same(self.get("old-copied"), self.plain["old-s3"]), (len(self.plain["old-s3"]), True))

    def test_upload_across_the_upgrade_reads(self):
        s3 = self.s3
        p2 = os.urandom(MIB + 9)
        e2 = s3.upload_part(Bucket="gcm", Key="mixed", UploadId=self.mixed_uid, PartNumber=2, Body=p2, **SSE_C)["ETag"]
        s3.complete_multipart_upload(Bucket="gcm", Key="mixed", UploadId=self.mixed_uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": self.mixed_e1}, {"PartNumber": 2, "ETag": e2}]})
        lines = self.row("mixed")[1].strip("\n").split("\n")
        self.assertEqual([" g2:" in line for line in lines], [False, True])
        whole = self.mixed_p1 + p2
        self.assertEqual(same(self.get("mixed", **SSE_C), whole), (len(whole), True))
        a = len(self.mixed_p1) - 100
        self.assertEqual(self.get("mixed", (a, a + 300), **SSE_C), whole[a:a + 301])
        self.assertEqual(same(self.get("mixed", PartNumber=2, **SSE_C), p2), (len(p2), True))


if __name__ == "__main__":
    unittest.main()
