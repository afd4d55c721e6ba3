"""Bucket features through boto3: create/head/list/delete with name rules, location,
versioning with delete markers, listing (V1, V2, versions) with delimiters and pagination, and
lifecycle expiry by the background sweeper with a short lifecycle day."""
import time
import unittest

from botocore.exceptions import ClientError

import lsd


def code(exc):
    return exc.exception.response["Error"]["Code"]


class BucketTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lsd.Daemon({"lifecycle_day_seconds": 1, "sweeper_interval_seconds": 0.3}).start()
        cls.s3 = cls.d.client()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_bucket_lifecycle_and_names(self):
        self.s3.create_bucket(Bucket="alpha-1")
        self.s3.head_bucket(Bucket="alpha-1")
        self.assertIn("alpha-1", [b["Name"] for b in self.s3.list_buckets()["Buckets"]])
        with self.assertRaises(ClientError) as e:
            self.s3.create_bucket(Bucket="alpha-1")
        self.assertEqual(code(e), "BucketAlreadyOwnedByYou")
        loc = self.s3.get_bucket_location(Bucket="alpha-1")
        self.assertIn(loc["LocationConstraint"], (None, "", "us-east-1"))
        for bad in ("ab", "UPPER", "under_score", "192.168.0.1", "-dash", "a" * 64):
            with self.assertRaises(ClientError) as e:
                self.s3.create_bucket(Bucket=bad)
            self.assertEqual(code(e), "InvalidBucketName", bad)
        self.s3.put_object(Bucket="alpha-1", Key="x", Body=b"1")
        with self.assertRaises(ClientError) as e:
            self.s3.delete_bucket(Bucket="alpha-1")
        self.assertEqual(code(e), "BucketNotEmpty")
        self.s3.delete_object(Bucket="alpha-1", Key="x")
        self.s3.delete_bucket(Bucket="alpha-1")
        with self.assertRaises(ClientError) as e:
            self.s3.head_bucket(Bucket="alpha-1")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)
        with self.assertRaises(ClientError) as e:
            self.s3.delete_bucket(Bucket="alpha-1")
        self.assertEqual(code(e), "NoSuchBucket")

    def test_bucket_tagging(self):
        # Tags given at creation are stored with the bucket (photon-server marks its buckets so).
        # Debian 12's botocore predates Tags in CreateBucketConfiguration: they are written into
        # the request's XML before it is signed.
        tags = ("<Tags><Tag><Key>photon:owner</Key><Value>photon:buckets/a/b</Value></Tag>"
                "</Tags>")

        def add_tags(request, **_):
            body = request.data.decode() if request.data else (
                '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                "</CreateBucketConfiguration>")
            request.data = body.replace("</CreateBucketConfiguration>",
                                        tags + "</CreateBucketConfiguration>").encode()
        self.s3.meta.events.register("before-sign.s3.CreateBucket", add_tags)
        try:
            self.s3.create_bucket(Bucket="tagged")
        finally:
            self.s3.meta.events.unregister("before-sign.s3.CreateBucket", add_tags)
        self.assertEqual(self.s3.get_bucket_tagging(Bucket="tagged")["TagSet"],
                         [{"Key": "photon:owner", "Value": "photon:buckets/a/b"}])
        self.s3.put_bucket_tagging(Bucket="tagged", Tagging={"TagSet": [
            {"Key": "team", "Value": "a & b"}, {"Key": "cost", "Value": ""}]})
        self.assertEqual(self.s3.get_bucket_tagging(Bucket="tagged")["TagSet"],
                         [{"Key": "team", "Value": "a & b"}, {"Key": "cost", "Value": ""}])
        for bad in ([{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}],
                    [{"Key": "k" * 129, "Value": "1"}],
                    [{"Key": "k%d" % i, "Value": ""} for i in range(51)]):
            with self.assertRaises(ClientError) as e:
                self.s3.put_bucket_tagging(Bucket="tagged", Tagging={"TagSet": bad})
            self.assertEqual(code(e), "InvalidTag")
        self.s3.delete_bucket_tagging(Bucket="tagged")
        with self.assertRaises(ClientError) as e:
            self.s3.get_bucket_tagging(Bucket="tagged")
        self.assertEqual(code(e), "NoSuchTagSet")
        with self.assertRaises(ClientError) as e:
            self.s3.get_bucket_tagging(Bucket="no-such-bucket")
        self.assertEqual(code(e), "NoSuchBucket")
        # Object tags are kept apart from the bucket's (test_s3_semantics has the rest).
        self.s3.put_object(Bucket="tagged", Key="o", Body=b"1", Tagging="k=v")
        self.assertEqual(self.s3.get_object_tagging(Bucket="tagged", Key="o")["TagSet"],
                         [{"Key": "k", "Value": "v"}])
        with self.assertRaises(ClientError) as e:
            self.s3.get_bucket_tagging(Bucket="tagged")
        self.assertEqual(code(e), "NoSuchTagSet")
        self.s3.delete_object(Bucket="tagged", Key="o")
        self.s3.delete_bucket(Bucket="tagged")

    def test_versioning(self):
        s3 = self.s3
        s3.create_bucket(Bucket="versioned")
        s3.put_object(Bucket="versioned", Key="k", Body=b"v0")  # the "null" version
        s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        self.assertEqual(s3.get_bucket_versioning(Bucket="versioned")["Status"], "Enabled")
        v1 = s3.put_object(Bucket="versioned", Key="k", Body=b"v1")["VersionId"]
        v2 = s3.put_object(Bucket="versioned", Key="k", Body=b"v2")["VersionId"]
        self.assertNotEqual(v1, v2)
        self.assertEqual(s3.get_object(Bucket="versioned", Key="k")["Body"].read(), b"v2")
        self.assertEqual(s3.get_object(Bucket="versioned", Key="k", VersionId=v1)["Body"].read(), b"v1")
        self.assertEqual(s3.get_object(Bucket="versioned", Key="k", VersionId="null")["Body"].read(), b"v0")
        d = s3.delete_object(Bucket="versioned", Key="k")
        self.assertTrue(d["DeleteMarker"])
        marker = d["VersionId"]
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket="versioned", Key="k")
        self.assertEqual(code(e), "NoSuchKey")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker"), "true")
        listing = s3.list_object_versions(Bucket="versioned")
        self.assertEqual([v["VersionId"] for v in listing["Versions"]], [v2, v1, "null"])
        self.assertEqual([m["VersionId"] for m in listing["DeleteMarkers"]], [marker])
        self.assertTrue(listing["DeleteMarkers"][0]["IsLatest"])
        self.assertEqual(s3.list_objects_v2(Bucket="versioned")["KeyCount"], 0)
        s3.delete_object(Bucket="versioned", Key="k", VersionId=marker)
        self.assertEqual(s3.get_object(Bucket="versioned", Key="k")["Body"].read(), b"v2")
        s3.delete_object(Bucket="versioned", Key="k", VersionId=v2)
        self.assertEqual(s3.get_object(Bucket="versioned", Key="k")["Body"].read(), b"v1")
        s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Suspended"})
        r = s3.put_object(Bucket="versioned", Key="k", Body=b"suspended")
        self.assertNotIn("VersionId", r)
        self.assertEqual(s3.get_object(Bucket="versioned", Key="k", VersionId="null")["Body"].read(), b"suspended")
        versions = s3.list_object_versions(Bucket="versioned")["Versions"]
        self.assertEqual(sorted(v["VersionId"] for v in versions), sorted([v1, "null"]))
        # Paginated version listing.
        s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        for i in range(5):
            s3.put_object(Bucket="versioned", Key="p", Body=str(i).encode())
        seen = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket="versioned", Prefix="p",
                                                                       PaginationConfig={"PageSize": 2}):
            seen += [v["VersionId"] for v in page.get("Versions", [])]
        self.assertEqual(len(seen), 5)
        self.assertEqual(len(set(seen)), 5)

    def test_listing(self):
        s3 = self.s3
        s3.create_bucket(Bucket="listing")
        keys = ["a.txt", "b/1", "b/2", "b/c/3", "d.txt", "e/f/g", "e/h", "photos/2024/jan/1.jpg",
                "photos/2024/feb/2.jpg", "photos/2025/x.jpg", "z", "sp ace/k+plus", "ünï/cödé"]
        keys += [f"many/{i:03d}" for i in range(30)]
        for k in keys:
            s3.put_object(Bucket="listing", Key=k, Body=b"x")

        def v2_all(**kw):
            contents, prefixes = [], []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="listing", **kw):
                contents += [c["Key"] for c in page.get("Contents", [])]
                prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            return contents, prefixes

        def expected(prefix="", delimiter=""):
            contents, prefixes = [], []
            for k in sorted(keys, key=lambda s: s.encode()):
                if not k.startswith(prefix):
                    continue
                rest = k[len(prefix):]
                if delimiter and delimiter in rest:
                    cp = prefix + rest[:rest.index(delimiter) + len(delimiter)]
                    if cp not in prefixes:
                        prefixes.append(cp)
                else:
                    contents.append(k)
            return contents, prefixes

        for page_size in (1, 2, 3, 7, 1000):
            for prefix, delim in (("", ""), ("", "/"), ("photos/", "/"), ("photos/2024/", "/"), ("b", "/"),
                                  ("many/", ""), ("e/", "/")):
                got = v2_all(Prefix=prefix, Delimiter=delim, PaginationConfig={"PageSize": page_size})
                self.assertEqual(got, expected(prefix, delim), (prefix, delim, page_size))
        r = s3.list_objects_v2(Bucket="listing", StartAfter="many/027")
        self.assertEqual([c["Key"] for c in r["Contents"]][:3], ["many/028", "many/029", "photos/2024/feb/2.jpg"])
        r = s3.list_objects_v2(Bucket="listing", MaxKeys=2)
        self.assertTrue(r["IsTruncated"])
        self.assertEqual(r["KeyCount"], 2)
        # V1 with marker pagination.
        got = []
        for page in s3.get_paginator("list_objects").paginate(Bucket="listing", PaginationConfig={"PageSize": 4}):
            got += [c["Key"] for c in page.get("Contents", [])]
        self.assertEqual(got, expected()[0])
        r = s3.list_objects(Bucket="listing", Marker="e/h", Delimiter="/")
        self.assertEqual(r["CommonPrefixes"][0]["Prefix"], "many/")
        with self.assertRaises(ClientError) as e:
            s3.list_objects_v2(Bucket="nope-bucket")
        self.assertEqual(code(e), "NoSuchBucket")

    def test_lifecycle_expiry(self):
        s3 = self.s3
        s3.create_bucket(Bucket="lifecycle")
        s3.put_object(Bucket="lifecycle", Key="logs/old", Body=b"1")
        s3.put_object(Bucket="lifecycle", Key="keep/this", Body=b"2")
        s3.put_bucket_lifecycle_configuration(Bucket="lifecycle", LifecycleConfiguration={"Rules": [
            {"ID": "expire-logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 2}}]})
        rules = s3.get_bucket_lifecycle_configuration(Bucket="lifecycle")["Rules"]
        self.assertEqual(rules[0]["Expiration"]["Days"], 2)
        deadline = time.time() + 10
        while time.time() < deadline:
            keys = [c["Key"] for c in s3.list_objects_v2(Bucket="lifecycle").get("Contents", [])]
            if "logs/old" not in keys:
                break
            time.sleep(0.2)
        self.assertEqual(keys, ["keep/this"])
        s3.delete_bucket_lifecycle(Bucket="lifecycle")
        with self.assertRaises(ClientError) as e:
            s3.get_bucket_lifecycle_configuration(Bucket="lifecycle")
        self.assertEqual(code(e), "NoSuchLifecycleConfiguration")

    def test_abandoned_upload_rule(self):
        s3 = self.s3
        s3.create_bucket(Bucket="uploads")
        uid = s3.create_multipart_upload(Bucket="uploads", Key="tmp/x")["UploadId"]
        s3.upload_part(Bucket="uploads", Key="tmp/x", UploadId=uid, PartNumber=1, Body=b"part")
        s3.put_bucket_lifecycle_configuration(Bucket="uploads", LifecycleConfiguration={"Rules": [
            {"ID": "abort", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled",
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
        deadline = time.time() + 10
        while time.time() < deadline and s3.list_multipart_uploads(Bucket="uploads").get("Uploads"):
            time.sleep(0.2)
        self.assertFalse(s3.list_multipart_uploads(Bucket="uploads").get("Uploads"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
