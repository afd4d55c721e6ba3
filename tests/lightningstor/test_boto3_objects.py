"""Object features through boto3 (and a raw signer where SDKs cannot go): PUT/GET/HEAD with
metadata, ranges, conditions, copy, multi-delete, checksums, multipart, presigned URLs,
streaming chunk signatures, auth failures, size limits, bit rot, public access."""
import base64
import datetime
import glob
import hashlib
import os
import time
import unittest
import urllib.error
import urllib.request

from botocore.exceptions import ClientError

import lsd
import s3raw

MIB = 1 << 20


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def code(exc):
    return exc.exception.response["Error"]["Code"]


class ObjectTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lsd.Daemon({"max_object_size": 12 * MIB}).start()
        cls.s3 = cls.d.client()
        cls.s3.create_bucket(Bucket="objects")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_put_get_head_metadata(self):
        body = b"hello lightningstor"
        r = self.s3.put_object(Bucket="objects", Key="dir/héllo wörld+x.txt", Body=body, ContentType="text/plain",
                               ContentEncoding="identity", CacheControl="max-age=60",
                               Metadata={"color": "blue", "n": "1"})
        self.assertEqual(r["ETag"], '"%s"' % lsd.md5(body))
        g = self.s3.get_object(Bucket="objects", Key="dir/héllo wörld+x.txt")
        self.assertEqual(g["Body"].read(), body)
        self.assertEqual(g["ContentType"], "text/plain")
        self.assertEqual(g["ContentEncoding"], "identity")
        self.assertEqual(g["CacheControl"], "max-age=60")
        self.assertEqual(g["Metadata"], {"color": "blue", "n": "1"})
        h = self.s3.head_object(Bucket="objects", Key="dir/héllo wörld+x.txt")
        self.assertEqual(h["ContentLength"], len(body))
        with self.assertRaises(ClientError) as e:
            self.s3.get_object(Bucket="objects", Key="missing")
        self.assertEqual(code(e), "NoSuchKey")
        with self.assertRaises(ClientError) as e:
            self.s3.get_object(Bucket="nobucket", Key="x")
        self.assertEqual(code(e), "NoSuchBucket")

    def test_large_object_streams(self):
        body = os.urandom(9 * MIB + 123)
        self.s3.put_object(Bucket="objects", Key="large", Body=body)
        self.assertEqual(self.s3.get_object(Bucket="objects", Key="large")["Body"].read(), body)
        part = self.s3.get_object(Bucket="objects", Key="large", Range="bytes=%d-%d" % (MIB - 5, 3 * MIB))
        self.assertEqual(part["Body"].read(), body[MIB - 5:3 * MIB + 1])

    def test_ranges(self):
        self.s3.put_object(Bucket="objects", Key="range", Body=b"0123456789")
        get = lambda r: self.s3.get_object(Bucket="objects", Key="range", Range=r)
        self.assertEqual(get("bytes=0-4")["Body"].read(), b"01234")
        self.assertEqual(get("bytes=-3")["Body"].read(), b"789")
        r = get("bytes=5-")
        self.assertEqual(r["Body"].read(), b"56789")
        self.assertEqual(r["ContentRange"], "bytes 5-9/10")
        with self.assertRaises(ClientError) as e:
            get("bytes=20-30")
        self.assertEqual(code(e), "InvalidRange")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 416)

    def test_conditionals(self):
        r = self.s3.put_object(Bucket="objects", Key="cond", Body=b"data")
        etag = r["ETag"]
        self.assertEqual(self.s3.get_object(Bucket="objects", Key="cond", IfMatch=etag)["Body"].read(), b"data")
        with self.assertRaises(ClientError) as e:
            self.s3.get_object(Bucket="objects", Key="cond", IfMatch='"nope"')
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 412)
        with self.assertRaises(ClientError) as e:
            self.s3.get_object(Bucket="objects", Key="cond", IfNoneMatch=etag)
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 304)
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPHeaders"].get("etag"), etag)
        future = datetime.datetime.utcnow() + datetime.timedelta(days=1)
        past = datetime.datetime.utcnow() - datetime.timedelta(days=1)
        with self.assertRaises(ClientError) as e:
            self.s3.get_object(Bucket="objects", Key="cond", IfModifiedSince=future)
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 304)
        self.assertEqual(self.s3.get_object(Bucket="objects", Key="cond", IfModifiedSince=past)["Body"].read(), b"data")
        with self.assertRaises(ClientError) as e:
            self.s3.get_object(Bucket="objects", Key="cond", IfUnmodifiedSince=past)
        self.assertEqual(code(e), "PreconditionFailed")

    def test_copy(self):
        self.s3.put_object(Bucket="objects", Key="src", Body=b"copy me", ContentType="text/x-src",
                           Metadata={"a": "1"})
        r = self.s3.copy_object(Bucket="objects", Key="dst", CopySource={"Bucket": "objects", "Key": "src"})
        self.assertEqual(r["CopyObjectResult"]["ETag"], '"%s"' % lsd.md5(b"copy me"))
        g = self.s3.get_object(Bucket="objects", Key="dst")
        self.assertEqual((g["Body"].read(), g["ContentType"], g["Metadata"]), (b"copy me", "text/x-src", {"a": "1"}))
        self.s3.copy_object(Bucket="objects", Key="dst2", CopySource="objects/src", MetadataDirective="REPLACE",
                            ContentType="text/x-new", Metadata={"b": "2"})
        g = self.s3.get_object(Bucket="objects", Key="dst2")
        self.assertEqual((g["ContentType"], g["Metadata"]), ("text/x-new", {"b": "2"}))
        with self.assertRaises(ClientError) as e:
            self.s3.copy_object(Bucket="objects", Key="src", CopySource="objects/src")
        self.assertEqual(code(e), "InvalidRequest")
        self.s3.copy_object(Bucket="objects", Key="src", CopySource="objects/src", MetadataDirective="REPLACE")
        with self.assertRaises(ClientError) as e:
            self.s3.copy_object(Bucket="objects", Key="x", CopySource="objects/nothere")
        self.assertEqual(code(e), "NoSuchKey")

    def test_multi_delete(self):
        for i in range(5):
            self.s3.put_object(Bucket="objects", Key=f"md/{i}", Body=b"x")
        r = self.s3.delete_objects(Bucket="objects", Delete={"Objects": [{"Key": f"md/{i}"} for i in range(5)]})
        self.assertEqual(sorted(d["Key"] for d in r["Deleted"]), [f"md/{i}" for i in range(5)])
        self.assertEqual(self.s3.list_objects_v2(Bucket="objects", Prefix="md/")["KeyCount"], 0)

    def test_checksums(self):
        body = b"checksummed body"
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        self.s3.put_object(Bucket="objects", Key="ck", Body=body, ContentMD5=md5)
        with self.assertRaises(ClientError) as e:
            self.s3.put_object(Bucket="objects", Key="ck", Body=body,
                               ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode())
        self.assertEqual(code(e), "BadDigest")
        # CRC32C through the raw signer: boto3 needs an optional native module for it.
        crc = base64.b64encode(crc32c(body).to_bytes(4, "big")).decode()
        headers, *_ = s3raw.sign(self.d.access_key, self.d.secret_key, "PUT", "/objects/ck-c", [],
                                 {"host": f"127.0.0.1:{self.d.port}", "content-length": str(len(body)),
                                  "x-amz-checksum-crc32c": crc}, "UNSIGNED-PAYLOAD")
        status, _, resp = s3raw.send(self.d.port, "PUT", "/objects/ck-c", headers, body)
        self.assertEqual(status, 200, resp)
        self.assertEqual(self.s3.head_object(Bucket="objects", Key="ck-c", ChecksumMode="ENABLED")["ChecksumCRC32C"], crc)
        headers["x-amz-checksum-crc32c"] = "AAAAAA=="
        headers, *_ = s3raw.sign(self.d.access_key, self.d.secret_key, "PUT", "/objects/ck-c", [],
                                 {k: v for k, v in headers.items() if k not in ("authorization", "x-amz-date", "x-amz-content-sha256")},
                                 "UNSIGNED-PAYLOAD")
        status, _, resp = s3raw.send(self.d.port, "PUT", "/objects/ck-c", headers, body)
        self.assertEqual(status, 400)
        self.assertIn(b"BadDigest", resp)
        for alg in ("CRC32", "SHA256", "SHA1"):
            r = self.s3.put_object(Bucket="objects", Key="ck-" + alg, Body=body, ChecksumAlgorithm=alg)
            self.assertIn("Checksum" + alg, r)
            g = self.s3.get_object(Bucket="objects", Key="ck-" + alg, ChecksumMode="ENABLED")
            self.assertEqual(g["Body"].read(), body)
            self.assertEqual(g["Checksum" + alg], r["Checksum" + alg])
        with self.assertRaises(ClientError) as e:
            self.s3.put_object(Bucket="objects", Key="ck", Body=body, ChecksumSHA256=base64.b64encode(b"x" * 32).decode())
        self.assertEqual(code(e), "BadDigest")
        with self.assertRaises(ClientError) as e:
            self.s3.put_object(Bucket="objects", Key="ck", Body=body, ChecksumCRC32="AAAAAA==")
        self.assertEqual(code(e), "BadDigest")

    def test_multipart(self):
        p1, p2, p3 = os.urandom(5 * MIB), os.urandom(5 * MIB + 7), os.urandom(1000)
        up = self.s3.create_multipart_upload(Bucket="objects", Key="mp", ContentType="video/x", Metadata={"m": "p"})
        uid = up["UploadId"]
        e1 = self.s3.upload_part(Bucket="objects", Key="mp", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
        e2 = self.s3.upload_part(Bucket="objects", Key="mp", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
        e3 = self.s3.upload_part(Bucket="objects", Key="mp", UploadId=uid, PartNumber=3, Body=p3)["ETag"]
        parts = self.s3.list_parts(Bucket="objects", Key="mp", UploadId=uid)["Parts"]
        self.assertEqual([p["PartNumber"] for p in parts], [1, 2, 3])
        uploads = self.s3.list_multipart_uploads(Bucket="objects")["Uploads"]
        self.assertIn(uid, [u["UploadId"] for u in uploads])
        with self.assertRaises(ClientError) as e:
            self.s3.complete_multipart_upload(Bucket="objects", Key="mp", UploadId=uid, MultipartUpload={
                "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
        self.assertEqual(code(e), "InvalidPartOrder")
        with self.assertRaises(ClientError) as e:
            self.s3.complete_multipart_upload(Bucket="objects", Key="mp", UploadId=uid, MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": e2}]})
        self.assertEqual(code(e), "InvalidPart")
        with self.assertRaises(ClientError) as e:
            self.s3.complete_multipart_upload(Bucket="objects", Key="mp", UploadId=uid, MultipartUpload={
                "Parts": [{"PartNumber": 3, "ETag": e3}, {"PartNumber": 4, "ETag": e3}]})
        self.assertEqual(code(e), "InvalidPart")
        r = self.s3.complete_multipart_upload(Bucket="objects", Key="mp", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e3}]})
        md5s = b"".join(hashlib.md5(p).digest() for p in (p1, p2, p3))
        self.assertEqual(r["ETag"], '"%s-3"' % hashlib.md5(md5s).hexdigest())
        g = self.s3.get_object(Bucket="objects", Key="mp")
        self.assertEqual(g["Body"].read(), p1 + p2 + p3)
        self.assertEqual((g["ContentType"], g["Metadata"]), ("video/x", {"m": "p"}))
        rg = self.s3.get_object(Bucket="objects", Key="mp", Range="bytes=%d-%d" % (5 * MIB - 2, 5 * MIB + 1))
        self.assertEqual(rg["Body"].read(), (p1 + p2)[5 * MIB - 2:5 * MIB + 2])

    def test_multipart_small_part_copy_abort(self):
        uid = self.s3.create_multipart_upload(Bucket="objects", Key="small")["UploadId"]
        e1 = self.s3.upload_part(Bucket="objects", Key="small", UploadId=uid, PartNumber=1, Body=b"a" * 100)["ETag"]
        e2 = self.s3.upload_part(Bucket="objects", Key="small", UploadId=uid, PartNumber=2, Body=b"b" * 100)["ETag"]
        with self.assertRaises(ClientError) as e:
            self.s3.complete_multipart_upload(Bucket="objects", Key="small", UploadId=uid, MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        self.assertEqual(code(e), "EntityTooSmall")
        self.s3.abort_multipart_upload(Bucket="objects", Key="small", UploadId=uid)
        with self.assertRaises(ClientError) as e:
            self.s3.list_parts(Bucket="objects", Key="small", UploadId=uid)
        self.assertEqual(code(e), "NoSuchUpload")
        # Part copy from an existing object.
        src = os.urandom(6 * MIB)
        self.s3.put_object(Bucket="objects", Key="pcsrc", Body=src)
        uid = self.s3.create_multipart_upload(Bucket="objects", Key="pc")["UploadId"]
        c1 = self.s3.upload_part_copy(Bucket="objects", Key="pc", UploadId=uid, PartNumber=1,
                                      CopySource="objects/pcsrc", CopySourceRange="bytes=0-%d" % (5 * MIB - 1))
        c2 = self.s3.upload_part_copy(Bucket="objects", Key="pc", UploadId=uid, PartNumber=2,
                                      CopySource="objects/pcsrc", CopySourceRange="bytes=%d-%d" % (5 * MIB, 6 * MIB - 1))
        self.s3.complete_multipart_upload(Bucket="objects", Key="pc", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": c1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": c2["CopyPartResult"]["ETag"]}]})
        self.assertEqual(self.s3.get_object(Bucket="objects", Key="pc")["Body"].read(), src)

    def test_presigned(self):
        self.s3.put_object(Bucket="objects", Key="pre", Body=b"presigned!")
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": "objects", "Key": "pre"}, ExpiresIn=60)
        self.assertEqual(urllib.request.urlopen(url, timeout=10).read(), b"presigned!")
        put_url = self.s3.generate_presigned_url("put_object", Params={"Bucket": "objects", "Key": "pre-put"}, ExpiresIn=60)
        req = urllib.request.Request(put_url, data=b"uploaded via url", method="PUT")
        urllib.request.urlopen(req, timeout=10).read()
        self.assertEqual(self.s3.get_object(Bucket="objects", Key="pre-put")["Body"].read(), b"uploaded via url")
        short = self.s3.generate_presigned_url("get_object", Params={"Bucket": "objects", "Key": "pre"}, ExpiresIn=1)
        time.sleep(2.1)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(short, timeout=10)
        self.assertEqual(e.exception.code, 403)
        self.assertIn(b"Request has expired", e.exception.read())
        tampered = url.replace("pre?", "pre2?")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(tampered, timeout=10)
        self.assertIn(b"SignatureDoesNotMatch", e.exception.read())

    def _streaming_put(self, key, data, corrupt=False):
        host = f"127.0.0.1:{self.d.port}"
        headers = {"host": host, "content-encoding": "aws-chunked",
                   "x-amz-decoded-content-length": str(len(data))}
        payload_len = len(s3raw.aws_chunked(b"k", "d", "s", "x" * 64, data))
        headers["content-length"] = str(payload_len)
        headers, key_bytes, seed, amz_date, scope = s3raw.sign(
            self.d.access_key, self.d.secret_key, "PUT", f"/objects/{key}", [], headers,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        body = s3raw.aws_chunked(key_bytes, amz_date, scope, seed, data, corrupt=corrupt)
        self.assertEqual(len(body), payload_len)
        return s3raw.send(self.d.port, "PUT", f"/objects/{key}", headers, body)

    def test_streaming_chunk_signatures(self):
        data = os.urandom(200000)
        status, _, body = self._streaming_put("stream", data)
        self.assertEqual(status, 200, body)
        g = self.s3.get_object(Bucket="objects", Key="stream")
        self.assertEqual(g["Body"].read(), data)
        self.assertNotIn("ContentEncoding", g)
        status, _, body = self._streaming_put("stream-bad", data, corrupt=True)
        self.assertEqual(status, 403)
        self.assertIn(b"SignatureDoesNotMatch", body)
        with self.assertRaises(ClientError):
            self.s3.head_object(Bucket="objects", Key="stream-bad")

    def test_unsigned_payload_and_virtual_host(self):
        host = f"objects.localhost:{self.d.port}"
        headers, *_ = s3raw.sign(self.d.access_key, self.d.secret_key, "PUT", "/vhost-key",
                                 [], {"host": host, "content-length": "5"}, "UNSIGNED-PAYLOAD")
        status, _, body = s3raw.send(self.d.port, "PUT", "/vhost-key", headers, b"vhost")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.s3.get_object(Bucket="objects", Key="vhost-key")["Body"].read(), b"vhost")

    def test_missing_content_length_and_too_large(self):
        headers, *_ = s3raw.sign(self.d.access_key, self.d.secret_key, "PUT", "/objects/nolen", [],
                                 {"host": f"127.0.0.1:{self.d.port}"}, "UNSIGNED-PAYLOAD")
        status, _, body = s3raw.send(self.d.port, "PUT", "/objects/nolen", headers)
        self.assertEqual(status, 411)
        self.assertIn(b"MissingContentLength", body)
        with self.assertRaises(ClientError) as e:
            self.s3.put_object(Bucket="objects", Key="huge", Body=b"x" * (12 * MIB + 1))
        self.assertEqual(code(e), "EntityTooLarge")

    def test_bad_credentials(self):
        bad = self.d.client(secret_key="0" * 40)
        with self.assertRaises(ClientError) as e:
            bad.list_buckets()
        self.assertEqual(code(e), "SignatureDoesNotMatch")
        unknown = self.d.client(access_key="LSNOSUCHKEY000000000")
        with self.assertRaises(ClientError) as e:
            unknown.list_buckets()
        self.assertEqual(code(e), "InvalidAccessKeyId")
        wrong_region = self.d.client(region="eu-central-1")
        with self.assertRaises(ClientError) as e:
            wrong_region.list_objects_v2(Bucket="objects")
        self.assertEqual(code(e), "AuthorizationHeaderMalformed")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(self.d.endpoint + "/objects/range", timeout=10)
        self.assertEqual(e.exception.code, 403)

    def test_public_read(self):
        self.s3.create_bucket(Bucket="public-b")
        self.s3.put_object(Bucket="public-b", Key="p.txt", Body=b"public")
        url = self.d.endpoint + "/public-b/p.txt"
        with self.assertRaises(urllib.error.HTTPError):
            urllib.request.urlopen(url, timeout=10)
        # A public-read bucket ACL lets everyone list, not read its private objects (as S3).
        self.s3.put_bucket_acl(Bucket="public-b", ACL="public-read")
        listing = urllib.request.urlopen(self.d.endpoint + "/public-b?list-type=2", timeout=10).read()
        self.assertIn(b"<Key>p.txt</Key>", listing)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url, timeout=10)
        self.assertEqual(e.exception.code, 403)
        self.s3.put_object_acl(Bucket="public-b", Key="p.txt", ACL="public-read")
        self.assertEqual(urllib.request.urlopen(url, timeout=10).read(), b"public")
        self.s3.put_object_acl(Bucket="public-b", Key="p.txt", ACL="private")
        req = urllib.request.Request(url, data=b"nope", method="PUT")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(e.exception.code, 403)
        self.s3.put_bucket_acl(Bucket="public-b", ACL="private")
        with self.assertRaises(urllib.error.HTTPError):
            urllib.request.urlopen(url, timeout=10)
        policy = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
                  '"Action":"s3:GetObject","Resource":"arn:aws:s3:::public-b/*"}]}')
        self.s3.put_bucket_policy(Bucket="public-b", Policy=policy)
        self.assertEqual(urllib.request.urlopen(url, timeout=10).read(), b"public")
        self.assertEqual(self.s3.get_bucket_policy(Bucket="public-b")["Policy"], policy)
        self.s3.delete_bucket_policy(Bucket="public-b")
        with self.assertRaises(urllib.error.HTTPError):
            urllib.request.urlopen(url, timeout=10)
        # Found by the XML/policy fuzz target: a non-string Effect threw out of the JSON
        # library and the connection was dropped without an answer.
        for bad in ('{"Statement":[{"Effect":["Allow"],"Principal":"*","Action":"s3:GetObject"}]}',
                    '{"Statement":[{"Principal":"*","Action":"s3:GetObject"}]}'):
            with self.assertRaises(ClientError) as e:
                self.s3.put_bucket_policy(Bucket="public-b", Policy=bad)
            self.assertEqual(e.exception.response["Error"]["Code"], "MalformedPolicy")

    def test_bit_rot(self):
        big = os.urandom(3 * MIB)
        self.s3.put_object(Bucket="objects", Key="rot-big", Body=big)
        # The blob file holding exactly these bytes.
        blobs = [p for p in glob.glob(os.path.join(self.d.data_dir, "blobs", "*", "*"))
                 if os.path.getsize(p) == len(big) and open(p, "rb").read() == big]
        self.assertEqual(len(blobs), 1)
        path = blobs[0]
        with open(path, "r+b") as f:
            f.seek(2 * MIB + 10)
            b = f.read(1)
            f.seek(2 * MIB + 10)
            f.write(bytes([b[0] ^ 0xFF]))
        got = b""
        try:
            got = self.s3.get_object(Bucket="objects", Key="rot-big")["Body"].read()
        except Exception:
            pass  # the connection is aborted mid-body: the client sees an error
        self.assertNotEqual(got, big)
        self.assertLess(len(got), len(big))

    def test_health_and_metrics(self):
        self.assertEqual(urllib.request.urlopen(self.d.endpoint + "/healthz", timeout=5).read(), b"ok\n")
        metrics = urllib.request.urlopen(self.d.endpoint + "/metrics", timeout=5).read().decode()
        self.assertIn('lightningstor_requests_total{op="PutObject",status="200"}', metrics)
        self.assertIn("lightningstor_request_duration_seconds_bucket", metrics)
        self.assertIn("lightningstor_bytes_in_total", metrics)


if __name__ == "__main__":
    unittest.main(verbosity=2)
