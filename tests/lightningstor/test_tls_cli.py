"""HTTPS (SDKs then send STREAMING-UNSIGNED-PAYLOAD-TRAILER bodies with trailing checksums),
plus the command line: key management, the 0600 keys file, and config validation."""
import os
import stat
import subprocess
import tempfile
import unittest

from botocore.exceptions import ClientError

import lsd


class TlsTest(unittest.TestCase):
    def test_https_with_trailer_checksums(self):
        d = lsd.Daemon(tls=True)
        try:
            d.start()
            s3 = d.client()
            s3.create_bucket(Bucket="secure")
            body = os.urandom(300000)
            r = s3.put_object(Bucket="secure", Key="k", Body=body, ChecksumAlgorithm="SHA256")
            self.assertIn("ChecksumSHA256", r)
            self.assertEqual(s3.get_object(Bucket="secure", Key="k")["Body"].read(), body)
            uid = s3.create_multipart_upload(Bucket="secure", Key="mp")["UploadId"]
            e = s3.upload_part(Bucket="secure", Key="mp", UploadId=uid, PartNumber=1, Body=body)["ETag"]
            s3.complete_multipart_upload(Bucket="secure", Key="mp", UploadId=uid,
                                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
            self.assertEqual(s3.get_object(Bucket="secure", Key="mp")["Body"].read(), body)
        finally:
            d.stop()


class CliTest(unittest.TestCase):
    def test_keys_and_config(self):
        d = lsd.Daemon()
        try:
            keys_file = os.path.join(d.data_dir, "keys.json")
            self.assertEqual(stat.S_IMODE(os.stat(keys_file).st_mode), 0o600)
            d.start()
            out = subprocess.run([lsd.BIN, "--config", d.config_path, "keys", "create", "second"],
                                 check=True, capture_output=True, text=True).stdout
            fields = dict(line.split(": ", 1) for line in out.strip().splitlines())
            second = d.client(access_key=fields["access_key_id"], secret_key=fields["secret_access_key"])
            second.list_buckets()  # a key created while the daemon runs works at once
            listing = subprocess.run([lsd.BIN, "--config", d.config_path, "keys", "list"],
                                     check=True, capture_output=True, text=True).stdout
            self.assertIn(fields["access_key_id"], listing)
            self.assertIn(d.access_key, listing)
            self.assertNotIn(fields["secret_access_key"], listing)
            subprocess.run([lsd.BIN, "--config", d.config_path, "keys", "delete", fields["access_key_id"]],
                           check=True, capture_output=True)
            with self.assertRaises(ClientError) as e:
                second.list_buckets()
            self.assertEqual(e.exception.response["Error"]["Code"], "InvalidAccessKeyId")
            self.assertEqual(stat.S_IMODE(os.stat(keys_file).st_mode), 0o600)
        finally:
            d.stop()
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("listen: 127.0.0.1:0\ndata_dir: /tmp/x\nregion: us-east-1\nlisten_port: 5\n")
            f.flush()
            p = subprocess.run([lsd.BIN, "--config", f.name], capture_output=True, text=True, timeout=10)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("listen_port", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
