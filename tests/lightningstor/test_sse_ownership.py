"""Encryption of multipart uploads, bucket default encryption and Object Ownership, through
boto3 against the real daemon: SSE-S3 and SSE-C multipart uploads (parts, part copies from
plain and encrypted sources, completion, GET / HEAD / ranges / partNumber, the SSE headers of
every answer, the key checked on every part, no plaintext or key in the data dir);
PutBucketEncryption applied to PUTs, copies and uploads that ask for nothing, and its
refusals; ObjectWriter / BucketOwnerPreferred / BucketOwnerEnforced with two accounts, and
their refusals."""
import base64
import hashlib
import json
import os
import subprocess
import unittest

from botocore.exceptions import ClientError

import lsd
import s3raw

MIB = 1 << 20


def code(exc):
    return exc.exception.response["Error"]["Code"]


def status(exc):
    return exc.exception.response["ResponseMetadata"]["HTTPStatusCode"]


def headers_of(resp):
    return resp["ResponseMetadata"]["HTTPHeaders"]


def digest(data):
    """What big bodies are compared by (a failing comparison of MiBs would be diffed for ages)."""
    return "%d bytes, md5 %s" % (len(data), hashlib.md5(data).hexdigest())


def multipart_etag(parts):
    return '"%s-%d"' % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts))


class SseOwnershipTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lsd.Daemon().start()
        cls.s3 = cls.d.client()  # the default account, "lightningstor"
        out = subprocess.run([lsd.BIN, "--config", cls.d.config_path, "keys", "create", "bob-key", "--user", "bob"],
                             check=True, capture_output=True, text=True, timeout=30).stdout
        fields = dict(line.split(": ", 1) for line in out.strip().splitlines())
        cls.bob = cls.d.client(fields["access_key_id"], fields["secret_access_key"])
        cls.s3.create_bucket(Bucket="enc")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def stored_files_contain(self, needle):
        return lsd.stored_files_contain(self.d.data_dir, needle)

    def assert_gone_from_disk(self, *needles):
        """After a delete: the freed blobs are unlinked just after the answer, not before it."""
        self.assertTrue(lsd.gone_from_disk(self.d.data_dir, needles), needles)

    # --- SSE on multipart uploads -----------------------------------------------------------

    def test_sse_s3_multipart(self):
        s3 = self.s3
        p1 = b"MP-SSE-S3-PART-ONE " + os.urandom(5 * MIB)
        p2 = b"MP-SSE-S3-PART-TWO " + os.urandom(5 * MIB)
        plain_src = b"MP-SSE-S3-COPY-SRC " + os.urandom(MIB)
        s3.put_object(Bucket="enc", Key="mp-plain-src", Body=plain_src)
        up = s3.create_multipart_upload(Bucket="enc", Key="mp-s3", ServerSideEncryption="AES256")
        self.assertEqual(up["ServerSideEncryption"], "AES256")
        uid = up["UploadId"]
        r1 = s3.upload_part(Bucket="enc", Key="mp-s3", UploadId=uid, PartNumber=1, Body=p1)
        self.assertEqual((r1["ServerSideEncryption"], r1["ETag"]), ("AES256", '"%s"' % lsd.md5(p1)))
        # x-amz-server-side-encryption belongs to the initiation: refused on a part.
        with lsd.extra_headers(s3, "UploadPart", {"x-amz-server-side-encryption": "AES256"}):
            with self.assertRaises(ClientError) as e:
                s3.upload_part(Bucket="enc", Key="mp-s3", UploadId=uid, PartNumber=2, Body=p2)
        self.assertEqual((status(e), code(e)), (400, "InvalidArgument"))
        r2 = s3.upload_part(Bucket="enc", Key="mp-s3", UploadId=uid, PartNumber=2, Body=p2)
        self.assertEqual(r2["ServerSideEncryption"], "AES256")
        # A part copied from a plain object's range: encrypted under the upload's key.
        r3 = s3.upload_part_copy(Bucket="enc", Key="mp-s3", UploadId=uid, PartNumber=3,
                                 CopySource="enc/mp-plain-src", CopySourceRange="bytes=0-99999")
        self.assertEqual(r3["ServerSideEncryption"], "AES256")
        p3 = plain_src[:100000]
        self.assertEqual(r3["CopyPartResult"]["ETag"], '"%s"' % lsd.md5(p3))
        done = s3.complete_multipart_upload(
            Bucket="enc", Key="mp-s3", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": r["ETag"] if "ETag" in r else r["CopyPartResult"]["ETag"]}
                                       for n, r in ((1, r1), (2, r2), (3, r3))]})
        self.assertEqual(done["ServerSideEncryption"], "AES256")
        self.assertEqual(done["ETag"], multipart_etag([p1, p2, p3]))  # as S3: the plaintext parts' MD5s
        whole = p1 + p2 + p3
        g = s3.get_object(Bucket="enc", Key="mp-s3")
        self.assertEqual((g["ServerSideEncryption"], digest(g["Body"].read())), ("AES256", digest(whole)))
        self.assertEqual(s3.head_object(Bucket="enc", Key="mp-s3")["ServerSideEncryption"], "AES256")
        # Ranges across part boundaries, and partNumber reads.
        a, b = len(p1) - 1000, len(p1) + len(p2) + 50
        rng = s3.get_object(Bucket="enc", Key="mp-s3", Range="bytes=%d-%d" % (a, b))["Body"].read()
        self.assertEqual(digest(rng), digest(whole[a:b + 1]))
        for n, p in ((1, p1), (2, p2), (3, p3)):
            g = s3.get_object(Bucket="enc", Key="mp-s3", PartNumber=n)
            self.assertEqual((g["PartsCount"], digest(g["Body"].read())), (3, digest(p)), n)
        # Copies out of it: decrypted across the parts' keystreams.
        s3.copy_object(Bucket="enc", Key="mp-s3-copy", CopySource="enc/mp-s3")
        g = s3.get_object(Bucket="enc", Key="mp-s3-copy")
        self.assertNotIn("ServerSideEncryption", g)
        self.assertEqual(digest(g["Body"].read()), digest(whole))
        s3.delete_object(Bucket="enc", Key="mp-s3-copy")
        s3.delete_object(Bucket="enc", Key="mp-plain-src")
        self.assert_gone_from_disk(p1[:40], p2[:40], p2[-40:], p3[:40])

    def test_sse_c_multipart(self):
        s3 = self.s3
        key, other = os.urandom(32), os.urandom(32)
        sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
        wrong = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": other}
        key_md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
        p1 = b"MP-SSE-C-PART-ONE " + os.urandom(5 * MIB)
        p2 = b"MP-SSE-C-PART-TWO " + os.urandom(5 * MIB)
        src = b"MP-SSE-C-COPY-SRC " + os.urandom(300000)
        s3.put_object(Bucket="enc", Key="mp-c-src", Body=src, **wrong)  # an SSE-C source, other key
        up = s3.create_multipart_upload(Bucket="enc", Key="mp-c", **sse)
        self.assertEqual((up["SSECustomerAlgorithm"], up["SSECustomerKeyMD5"]), ("AES256", key_md5))
        uid = up["UploadId"]
        # Every part needs the upload's key: missing or another one is 400, as S3 answers.
        for kwargs, expected in (({}, "InvalidRequest"), (wrong, "InvalidArgument")):
            with self.assertRaises(ClientError) as e:
                s3.upload_part(Bucket="enc", Key="mp-c", UploadId=uid, PartNumber=1, Body=p1, **kwargs)
            self.assertEqual((status(e), code(e)), (400, expected), kwargs)
        r1 = s3.upload_part(Bucket="enc", Key="mp-c", UploadId=uid, PartNumber=1, Body=p1, **sse)
        self.assertEqual((r1["SSECustomerAlgorithm"], r1["SSECustomerKeyMD5"]), ("AES256", key_md5))
        self.assertNotEqual(r1["ETag"], '"%s"' % lsd.md5(p1))  # does not tell the plaintext's MD5
        r2 = s3.upload_part(Bucket="enc", Key="mp-c", UploadId=uid, PartNumber=2, Body=p2, **sse)
        # A part copied from an SSE-C source: the source's key in the copy-source headers, the
        # upload's in the usual ones; each missing or wrong is refused.
        copy = dict(Bucket="enc", Key="mp-c", UploadId=uid, PartNumber=3, CopySource="enc/mp-c-src",
                    CopySourceRange="bytes=10-200009")
        for kwargs, expected in (({}, 400), (dict(sse, CopySourceSSECustomerAlgorithm="AES256",
                                                  CopySourceSSECustomerKey=key), 403),
                                 (dict(CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=other), 400)):
            with self.assertRaises(ClientError) as e:
                s3.upload_part_copy(**copy, **kwargs)
            self.assertEqual(status(e), expected, kwargs)
        r3 = s3.upload_part_copy(**copy, **sse, CopySourceSSECustomerAlgorithm="AES256",
                                 CopySourceSSECustomerKey=other)
        self.assertEqual(r3["SSECustomerKeyMD5"], key_md5)
        p3 = src[10:200010]
        parts = [{"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]},
                 {"PartNumber": 3, "ETag": r3["CopyPartResult"]["ETag"]}]
        done = s3.complete_multipart_upload(Bucket="enc", Key="mp-c", UploadId=uid,
                                            MultipartUpload={"Parts": parts})
        self.assertNotIn("ServerSideEncryption", done)
        whole = p1 + p2 + p3
        # Reads need the key: none 400, another 403; ranges and partNumber work with it.
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket="enc", Key="mp-c")
        self.assertEqual(status(e), 400)
        with self.assertRaises(ClientError) as e:
            s3.head_object(Bucket="enc", Key="mp-c", **wrong)
        self.assertEqual(status(e), 403)
        g = s3.get_object(Bucket="enc", Key="mp-c", **sse)
        self.assertEqual((g["SSECustomerAlgorithm"], g["SSECustomerKeyMD5"]), ("AES256", key_md5))
        self.assertEqual(digest(g["Body"].read()), digest(whole))
        a = len(p1) - 7
        self.assertEqual(s3.get_object(Bucket="enc", Key="mp-c", Range="bytes=%d-%d" % (a, a + MIB + 20),
                                       **sse)["Body"].read(), whole[a:a + MIB + 21])
        self.assertEqual(digest(s3.get_object(Bucket="enc", Key="mp-c", PartNumber=3, **sse)["Body"].read()),
                         digest(p3))
        h = s3.head_object(Bucket="enc", Key="mp-c", PartNumber=2, **sse)
        self.assertEqual(h["ContentLength"], len(p2))
        # A copy of it into a plain object, with its key.
        s3.copy_object(Bucket="enc", Key="mp-c-plain", CopySource="enc/mp-c",
                       CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=key)
        self.assertEqual(digest(s3.get_object(Bucket="enc", Key="mp-c-plain")["Body"].read()), digest(whole))
        s3.delete_object(Bucket="enc", Key="mp-c-plain")
        self.assert_gone_from_disk(p1[:40], p1[-40:], p2[:40], p3[:40], key, other)
        # An unencrypted upload takes no key on its parts.
        uid = s3.create_multipart_upload(Bucket="enc", Key="mp-plain")["UploadId"]
        with self.assertRaises(ClientError) as e:
            s3.upload_part(Bucket="enc", Key="mp-plain", UploadId=uid, PartNumber=1, Body=b"x", **sse)
        self.assertEqual(status(e), 400)
        s3.abort_multipart_upload(Bucket="enc", Key="mp-plain", UploadId=uid)

    # --- bucket default encryption ----------------------------------------------------------

    def test_bucket_default_encryption(self):
        s3 = self.s3
        s3.create_bucket(Bucket="enc-default")
        with self.assertRaises(ClientError) as e:
            s3.get_bucket_encryption(Bucket="enc-default")
        self.assertEqual((status(e), code(e)), (404, "ServerSideEncryptionConfigurationNotFoundError"))
        aes = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
        s3.put_bucket_encryption(Bucket="enc-default", ServerSideEncryptionConfiguration=aes)
        rule = s3.get_bucket_encryption(Bucket="enc-default")["ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertEqual(rule["ApplyServerSideEncryptionByDefault"], {"SSEAlgorithm": "AES256"})
        # A PUT that asks for nothing is SSE-S3, and says so.
        body = b"DEFAULT-ENCRYPTED-PLAINTEXT " * 100
        r = s3.put_object(Bucket="enc-default", Key="k", Body=body)
        self.assertEqual(r["ServerSideEncryption"], "AES256")
        g = s3.get_object(Bucket="enc-default", Key="k")
        self.assertEqual((g["ServerSideEncryption"], g["Body"].read()), ("AES256", body))
        self.assertFalse(self.stored_files_contain(b"DEFAULT-ENCRYPTED-PLAINTEXT"))
        # A copy into the bucket and a multipart upload too.
        # (Big enough to be a blob file: a deleted inline object's bytes may stay in free pages
        # of the metadata DB.)
        s3.put_object(Bucket="enc", Key="plain-for-default", Body=b"COPIED-INTO-DEFAULT " + os.urandom(200000))
        r = s3.copy_object(Bucket="enc-default", Key="copied", CopySource="enc/plain-for-default")
        self.assertEqual(headers_of(r)["x-amz-server-side-encryption"], "AES256")
        s3.delete_object(Bucket="enc", Key="plain-for-default")
        self.assert_gone_from_disk(b"COPIED-INTO-DEFAULT")
        up = s3.create_multipart_upload(Bucket="enc-default", Key="mp")
        self.assertEqual(up["ServerSideEncryption"], "AES256")
        part = b"DEFAULT-MP-PART " + os.urandom(1000)
        r1 = s3.upload_part(Bucket="enc-default", Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=part)
        self.assertEqual(r1["ServerSideEncryption"], "AES256")
        done = s3.complete_multipart_upload(Bucket="enc-default", Key="mp", UploadId=up["UploadId"],
                                            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r1["ETag"]}]})
        self.assertEqual(done["ServerSideEncryption"], "AES256")
        self.assertEqual(s3.get_object(Bucket="enc-default", Key="mp")["Body"].read(), part)
        self.assertFalse(self.stored_files_contain(b"DEFAULT-MP-PART"))
        # An explicit SSE-C key wins over the default.
        key = os.urandom(32)
        r = s3.put_object(Bucket="enc-default", Key="c", Body=b"x", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
        self.assertNotIn("ServerSideEncryption", r)
        self.assertEqual(r["SSECustomerAlgorithm"], "AES256")
        # BucketKeyEnabled is kept and answered back.
        s3.put_bucket_encryption(Bucket="enc-default", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
        rule = s3.get_bucket_encryption(Bucket="enc-default")["ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertTrue(rule["BucketKeyEnabled"])
        # Refused, nothing changed: SSE-KMS (as SSE-KMS on a PUT), an unknown algorithm or a
        # malformed document, a KMS key with AES256.
        for algorithm, expected in (("aws:kms", "NotImplemented"), ("aws:kms:dsse", "NotImplemented"),
                                    ("DES", "MalformedXML")):
            with self.assertRaises(ClientError) as e:
                s3.put_bucket_encryption(Bucket="enc-default", ServerSideEncryptionConfiguration={"Rules": [
                    {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm}}]})
            self.assertEqual(code(e), expected, algorithm)
        with self.assertRaises(ClientError) as e:
            s3.put_bucket_encryption(Bucket="enc-default", ServerSideEncryptionConfiguration={"Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": "k"}}]})
        self.assertEqual(code(e), "InvalidArgument")
        for doc in (b"<ServerSideEncryptionConfiguration><Rule><Frob/></Rule></ServerSideEncryptionConfiguration>",
                    b"not xml at all"):
            headers, *_ = s3raw.sign(self.d.access_key, self.d.secret_key, "PUT", "/enc-default", [("encryption", "")],
                                     {"host": f"127.0.0.1:{self.d.port}", "content-length": str(len(doc))},
                                     hashlib.sha256(doc).hexdigest())
            st, _, out = s3raw.send(self.d.port, "PUT", "/enc-default", headers, doc, query="encryption=")
            self.assertEqual(st, 400, out)
            self.assertIn(b"<Code>MalformedXML</Code>", out)
        self.assertTrue(s3.get_bucket_encryption(Bucket="enc-default")["ServerSideEncryptionConfiguration"]
                        ["Rules"][0]["BucketKeyEnabled"])
        # Another account may not read or change it.
        with self.assertRaises(ClientError) as e:
            self.bob.get_bucket_encryption(Bucket="enc-default")
        self.assertEqual(code(e), "AccessDenied")
        with self.assertRaises(ClientError) as e:
            self.bob.delete_bucket_encryption(Bucket="enc-default")
        self.assertEqual(code(e), "AccessDenied")
        # Deleted: PUTs are plain again.
        s3.delete_bucket_encryption(Bucket="enc-default")
        with self.assertRaises(ClientError) as e:
            s3.get_bucket_encryption(Bucket="enc-default")
        self.assertEqual(code(e), "ServerSideEncryptionConfigurationNotFoundError")
        self.assertNotIn("ServerSideEncryption", s3.put_object(Bucket="enc-default", Key="p", Body=b"p"))

    # --- Object Ownership --------------------------------------------------------------------

    def test_ownership_controls_documents(self):
        s3 = self.s3
        s3.create_bucket(Bucket="own-docs")
        with self.assertRaises(ClientError) as e:
            s3.get_bucket_ownership_controls(Bucket="own-docs")
        self.assertEqual((status(e), code(e)), (404, "OwnershipControlsNotFoundError"))
        for value in ("ObjectWriter", "BucketOwnerPreferred", "BucketOwnerEnforced"):
            s3.put_bucket_ownership_controls(Bucket="own-docs", OwnershipControls={"Rules": [{"ObjectOwnership": value}]})
            rules = s3.get_bucket_ownership_controls(Bucket="own-docs")["OwnershipControls"]["Rules"]
            self.assertEqual(rules, [{"ObjectOwnership": value}])
        with self.assertRaises(ClientError) as e:
            s3.put_bucket_ownership_controls(Bucket="own-docs", OwnershipControls={"Rules": [{"ObjectOwnership": "Nobody"}]})
        self.assertEqual(code(e), "MalformedXML")
        with self.assertRaises(ClientError) as e:
            self.bob.put_bucket_ownership_controls(Bucket="own-docs",
                                                   OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})
        self.assertEqual(code(e), "AccessDenied")
        self.assertEqual(s3.get_bucket_ownership_controls(Bucket="own-docs")["OwnershipControls"]["Rules"],
                         [{"ObjectOwnership": "BucketOwnerEnforced"}])
        s3.delete_bucket_ownership_controls(Bucket="own-docs")
        with self.assertRaises(ClientError) as e:
            s3.get_bucket_ownership_controls(Bucket="own-docs")
        self.assertEqual(code(e), "OwnershipControlsNotFoundError")
        # At creation: the value is kept; an unknown one is refused; BucketOwnerEnforced with a
        # public ACL is refused, nothing made.
        s3.create_bucket(Bucket="own-created", ObjectOwnership="BucketOwnerPreferred")
        self.assertEqual(s3.get_bucket_ownership_controls(Bucket="own-created")["OwnershipControls"]["Rules"],
                         [{"ObjectOwnership": "BucketOwnerPreferred"}])
        with self.assertRaises(ClientError) as e:
            s3.create_bucket(Bucket="own-bad", ObjectOwnership="Anyone")
        self.assertEqual(code(e), "InvalidArgument")
        with self.assertRaises(ClientError) as e:
            s3.create_bucket(Bucket="own-bad", ObjectOwnership="BucketOwnerEnforced", ACL="public-read")
        self.assertEqual(code(e), "InvalidBucketAclWithObjectOwnership")
        with self.assertRaises(ClientError) as e:
            s3.head_bucket(Bucket="own-bad")
        self.assertEqual(status(e), 404)

    def test_bucket_owner_preferred(self):
        s3, bob = self.s3, self.bob
        s3.create_bucket(Bucket="own-pref", ObjectOwnership="BucketOwnerPreferred",
                         GrantWrite="id=bob", GrantFullControl="id=lightningstor")
        bob.put_object(Bucket="own-pref", Key="given", Body=b"g", ACL="bucket-owner-full-control")
        bob.put_object(Bucket="own-pref", Key="kept", Body=b"k")
        # bucket-owner-full-control: the bucket's owner owns it (and reads it); else the writer.
        self.assertEqual(s3.get_object_acl(Bucket="own-pref", Key="given")["Owner"]["ID"], "lightningstor")
        self.assertEqual(s3.get_object(Bucket="own-pref", Key="given")["Body"].read(), b"g")
        self.assertEqual(bob.get_object_acl(Bucket="own-pref", Key="kept")["Owner"]["ID"], "bob")
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket="own-pref", Key="kept")
        self.assertEqual(code(e), "AccessDenied")
        listing = s3.list_objects_v2(Bucket="own-pref", FetchOwner=True)["Contents"]
        self.assertEqual({o["Key"]: o["Owner"]["ID"] for o in listing}, {"given": "lightningstor", "kept": "bob"})
        # A multipart upload too.
        uid = bob.create_multipart_upload(Bucket="own-pref", Key="mp", ACL="bucket-owner-full-control")["UploadId"]
        r = bob.upload_part(Bucket="own-pref", Key="mp", UploadId=uid, PartNumber=1, Body=b"m")
        bob.complete_multipart_upload(Bucket="own-pref", Key="mp", UploadId=uid,
                                      MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["ETag"]}]})
        self.assertEqual(s3.get_object_acl(Bucket="own-pref", Key="mp")["Owner"]["ID"], "lightningstor")

    def test_bucket_owner_enforced(self):
        s3, bob = self.s3, self.bob
        s3.create_bucket(Bucket="own-enf")
        bob_writes = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": ["s3:PutObject", "s3:GetObject"],
             "Resource": "arn:aws:s3:::own-enf/*"}]}
        s3.put_bucket_policy(Bucket="own-enf", Policy=json.dumps(bob_writes))
        bob.put_object(Bucket="own-enf", Key="before", Body=b"b")  # ObjectWriter: bob's, private
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket="own-enf", Key="before")
        self.assertEqual(code(e), "AccessDenied")
        # A bucket whose ACL grants others cannot turn ACLs off.
        s3.put_bucket_acl(Bucket="own-enf", ACL="public-read")
        with self.assertRaises(ClientError) as e:
            s3.put_bucket_ownership_controls(Bucket="own-enf",
                                             OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
        self.assertEqual(code(e), "InvalidBucketAclWithObjectOwnership")
        with self.assertRaises(ClientError) as e:
            s3.get_bucket_ownership_controls(Bucket="own-enf")
        self.assertEqual(code(e), "OwnershipControlsNotFoundError")
        s3.put_bucket_acl(Bucket="own-enf", ACL="private")
        s3.put_bucket_ownership_controls(Bucket="own-enf",
                                         OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
        # Every object is the bucket owner's now, those written before too.
        self.assertEqual(s3.get_object(Bucket="own-enf", Key="before")["Body"].read(), b"b")
        bob.put_object(Bucket="own-enf", Key="after", Body=b"a")
        bob.put_object(Bucket="own-enf", Key="after-bofc", Body=b"c", ACL="bucket-owner-full-control")
        for key in ("before", "after", "after-bofc"):
            acl = s3.get_object_acl(Bucket="own-enf", Key=key)
            self.assertEqual(acl["Owner"]["ID"], "lightningstor", key)
            self.assertEqual([(g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]],
                             [("lightningstor", "FULL_CONTROL")], key)
        self.assertEqual(s3.get_object(Bucket="own-enf", Key="after")["Body"].read(), b"a")
        listing = s3.list_objects_v2(Bucket="own-enf", FetchOwner=True)["Contents"]
        self.assertEqual({o["Owner"]["ID"] for o in listing}, {"lightningstor"})
        # ACLs that grant anything else: AccessControlListNotSupported, nothing stored.
        for call in (lambda: bob.put_object(Bucket="own-enf", Key="refused", Body=b"r", ACL="public-read"),
                     lambda: bob.put_object(Bucket="own-enf", Key="refused", Body=b"r", GrantRead="id=bob"),
                     lambda: bob.create_multipart_upload(Bucket="own-enf", Key="refused", ACL="authenticated-read"),
                     lambda: s3.put_object_acl(Bucket="own-enf", Key="after", ACL="public-read"),
                     lambda: s3.put_object_acl(Bucket="own-enf", Key="after", ACL="private"),
                     lambda: s3.put_bucket_acl(Bucket="own-enf", ACL="public-read"),
                     lambda: s3.put_bucket_acl(Bucket="own-enf", ACL="private"),
                     lambda: s3.copy_object(Bucket="own-enf", Key="refused", CopySource="own-enf/after",
                                            ACL="bucket-owner-read")):
            with self.assertRaises(ClientError) as e:
                call()
            self.assertEqual((status(e), code(e)), (400, "AccessControlListNotSupported"))
        with self.assertRaises(ClientError) as e:
            s3.head_object(Bucket="own-enf", Key="refused")
        self.assertEqual(status(e), 404)
        self.assertNotIn("Uploads", s3.list_multipart_uploads(Bucket="own-enf"))
        self.assertEqual(len(s3.get_bucket_acl(Bucket="own-enf")["Grants"]), 1)
        # bucket-owner-full-control, or the owner's own FULL_CONTROL as a document, is taken.
        s3.put_object_acl(Bucket="own-enf", Key="after", ACL="bucket-owner-full-control")
        owner_only = {"Owner": {"ID": "lightningstor"}, "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": "lightningstor"}, "Permission": "FULL_CONTROL"}]}
        s3.put_bucket_acl(Bucket="own-enf", AccessControlPolicy=owner_only)
        s3.put_object_acl(Bucket="own-enf", Key="after", AccessControlPolicy=owner_only)
        # Back to ObjectWriter: stored ACLs count again.
        s3.delete_bucket_ownership_controls(Bucket="own-enf")
        self.assertEqual(bob.get_object_acl(Bucket="own-enf", Key="before")["Owner"]["ID"], "bob")


if __name__ == "__main__":
    unittest.main()
