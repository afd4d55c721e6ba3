"""Accounts and ownership through boto3 with two users (alice, bob) and an anonymous caller:
who owns buckets and objects, what ListBuckets shows each account, BucketAlreadyExists vs
BucketAlreadyOwnedByYou, ACL grants to another account (x-amz-grant-*, AccessControlPolicy
documents, canned ACLs naming the bucket owner), owners in listings, and what each may not do."""
import hashlib
import json
import re
import subprocess
import unittest
import urllib.error
import urllib.request

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

import lsd
import s3raw


def code(exc):
    return exc.exception.response["Error"]["Code"]


class AccountsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lsd.Daemon().start()
        cls.users = {}
        cls.keys = {}
        for user in ("alice", "bob"):
            out = subprocess.run([lsd.BIN, "--config", cls.d.config_path, "keys", "create", user + "-key",
                                  "--user", user], check=True, capture_output=True, text=True, timeout=30).stdout
            fields = dict(line.split(": ", 1) for line in out.strip().splitlines())
            cls.users[user] = cls.d.client(fields["access_key_id"], fields["secret_access_key"])
            cls.keys[user] = (fields["access_key_id"], fields["secret_access_key"])
        cls.alice, cls.bob = cls.users["alice"], cls.users["bob"]

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def denied(self, call, *args, **kwargs):
        with self.assertRaises(ClientError) as e:
            call(*args, **kwargs)
        self.assertIn(code(e), ("AccessDenied", "403"), (call, kwargs))

    def anon_get(self, path):
        try:
            with urllib.request.urlopen(self.d.endpoint + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_bad_user_name_refused_by_cli(self):
        r = subprocess.run([lsd.BIN, "--config", self.d.config_path, "keys", "create", "k", "--user", "Bad User"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        listing = subprocess.run([lsd.BIN, "--config", self.d.config_path, "keys", "list"], check=True,
                                 capture_output=True, text=True, timeout=30).stdout
        self.assertIn("\talice\n", listing)
        self.assertNotIn("Bad User", listing)

    def test_buckets_belong_to_their_creator(self):
        self.alice.create_bucket(Bucket="acct-alice")
        self.bob.create_bucket(Bucket="acct-bob")
        names = lambda s3: [b["Name"] for b in s3.list_buckets()["Buckets"]]
        self.assertIn("acct-alice", names(self.alice))
        self.assertNotIn("acct-bob", names(self.alice))
        self.assertIn("acct-bob", names(self.bob))
        self.assertNotIn("acct-alice", names(self.bob))
        self.assertEqual(self.alice.list_buckets()["Owner"]["ID"], "alice")
        # The key without a user (lsd's "test" key) is the default account and sees neither.
        self.assertNotIn("acct-alice", names(self.d.client()))
        with self.assertRaises(ClientError) as e:
            self.bob.create_bucket(Bucket="acct-alice")
        self.assertEqual(code(e), "BucketAlreadyExists")
        with self.assertRaises(ClientError) as e:
            self.alice.create_bucket(Bucket="acct-alice")
        self.assertEqual(code(e), "BucketAlreadyOwnedByYou")
        self.assertEqual(self.alice.get_bucket_acl(Bucket="acct-alice")["Owner"]["ID"], "alice")
        # Another account may neither read nor change nor delete the bucket.
        self.alice.put_object(Bucket="acct-alice", Key="private", Body=b"alice's")
        self.denied(self.bob.get_object, Bucket="acct-alice", Key="private")
        self.denied(self.bob.head_object, Bucket="acct-alice", Key="private")
        self.denied(self.bob.get_object, Bucket="acct-alice", Key="missing")  # not told it is missing
        self.denied(self.bob.list_objects_v2, Bucket="acct-alice")
        self.denied(self.bob.put_object, Bucket="acct-alice", Key="intruder", Body=b"x")
        self.denied(self.bob.delete_object, Bucket="acct-alice", Key="private")
        self.denied(self.bob.delete_bucket, Bucket="acct-alice")
        self.denied(self.bob.put_bucket_versioning, Bucket="acct-alice",
                    VersioningConfiguration={"Status": "Enabled"})
        self.denied(self.bob.get_bucket_acl, Bucket="acct-alice")
        self.denied(self.bob.put_bucket_acl, Bucket="acct-alice", ACL="public-read")
        self.denied(self.bob.get_object_acl, Bucket="acct-alice", Key="private")
        self.denied(self.bob.get_object_tagging, Bucket="acct-alice", Key="private")
        self.denied(self.bob.copy_object, Bucket="acct-bob", Key="stolen",
                    CopySource={"Bucket": "acct-alice", "Key": "private"})
        self.assertEqual(self.alice.get_object(Bucket="acct-alice", Key="private")["Body"].read(), b"alice's")

    def test_object_grants_to_another_account(self):
        self.alice.create_bucket(Bucket="acct-grants")
        self.alice.put_object(Bucket="acct-grants", Key="shared", Body=b"for bob", GrantRead='id="bob"')
        self.assertEqual(self.bob.get_object(Bucket="acct-grants", Key="shared")["Body"].read(), b"for bob")
        self.denied(self.bob.get_object_acl, Bucket="acct-grants", Key="shared")  # READ is not READ_ACP
        self.assertEqual(self.anon_get("/acct-grants/shared")[0], 403)
        acl = self.alice.get_object_acl(Bucket="acct-grants", Key="shared")
        self.assertEqual(acl["Owner"]["ID"], "alice")
        self.assertIn({"Grantee": {"Type": "CanonicalUser", "ID": "bob", "DisplayName": "bob"},
                       "Permission": "READ"}, acl["Grants"])
        # An ACL document replaces the grants: READ_ACP to bob, no READ.
        self.alice.put_object_acl(Bucket="acct-grants", Key="shared", AccessControlPolicy={
            "Owner": {"ID": "alice"},
            "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": "alice"}, "Permission": "FULL_CONTROL"},
                       {"Grantee": {"Type": "CanonicalUser", "ID": "bob"}, "Permission": "READ_ACP"}]})
        self.denied(self.bob.get_object, Bucket="acct-grants", Key="shared")
        self.assertEqual(self.bob.get_object_acl(Bucket="acct-grants", Key="shared")["Owner"]["ID"], "alice")
        self.denied(self.bob.put_object_acl, Bucket="acct-grants", Key="shared", ACL="public-read")
        # authenticated-read: every signed account reads, anonymous callers do not.
        self.alice.put_object(Bucket="acct-grants", Key="members", Body=b"m", ACL="authenticated-read")
        self.assertEqual(self.bob.get_object(Bucket="acct-grants", Key="members")["Body"].read(), b"m")
        self.assertEqual(self.anon_get("/acct-grants/members")[0], 403)
        # Grants to an account that does not exist are refused, not stored.
        for kwargs in ({"GrantRead": 'id="mallory"'}, {"GrantFullControl": 'emailAddress="m@example.com"'}):
            with self.assertRaises(ClientError) as e:
                self.alice.put_object(Bucket="acct-grants", Key="bad", Body=b"x", **kwargs)
            self.assertEqual(code(e), "InvalidArgument", kwargs)
        with self.assertRaises(ClientError) as e:
            self.alice.put_object(Bucket="acct-grants", Key="bad", Body=b"x", ACL="private", GrantRead='id="bob"')
        self.assertEqual(code(e), "InvalidRequest")
        # Anonymous writes are never granted: refused rather than stored and not honoured.
        with self.assertRaises(ClientError) as e:
            self.alice.put_bucket_acl(Bucket="acct-grants",
                                      GrantWrite='uri="http://acs.amazonaws.com/groups/global/AllUsers"')
        self.assertEqual(code(e), "NotImplemented")

    def test_bucket_write_grant_and_object_writer_ownership(self):
        # Grant headers are the whole ACL, as in S3: the owner's own grant is named too.
        self.alice.create_bucket(Bucket="acct-dropbox", GrantWrite='id="bob"', GrantRead='id="bob"',
                                 GrantFullControl='id="alice"')
        self.alice.put_object(Bucket="acct-dropbox", Key="by-alice", Body=b"a")
        # bob may write into alice's bucket; he owns what he writes.
        self.bob.put_object(Bucket="acct-dropbox", Key="by-bob", Body=b"b")
        self.bob.put_object(Bucket="acct-dropbox", Key="by-bob-shared", Body=b"c", ACL="bucket-owner-full-control")
        self.assertEqual(self.bob.get_object_acl(Bucket="acct-dropbox", Key="by-bob")["Owner"]["ID"], "bob")
        listing = self.alice.list_objects_v2(Bucket="acct-dropbox", FetchOwner=True)["Contents"]
        owners = {o["Key"]: o["Owner"]["ID"] for o in listing}
        self.assertEqual(owners, {"by-alice": "alice", "by-bob": "bob", "by-bob-shared": "bob"})
        v1 = self.bob.list_objects(Bucket="acct-dropbox")["Contents"]
        self.assertEqual({o["Key"]: o["Owner"]["ID"] for o in v1}, owners)
        self.assertNotIn("Owner", self.alice.list_objects_v2(Bucket="acct-dropbox")["Contents"][0])
        # The bucket owner does not read bob's private object, unless bob granted it.
        self.denied(self.alice.get_object, Bucket="acct-dropbox", Key="by-bob")
        self.assertEqual(self.alice.get_object(Bucket="acct-dropbox", Key="by-bob-shared")["Body"].read(), b"c")
        self.denied(self.bob.get_object, Bucket="acct-dropbox", Key="by-alice")
        # Bucket WRITE lets bob delete alice's objects (as in S3), not configure the bucket.
        self.bob.delete_object(Bucket="acct-dropbox", Key="by-alice")
        self.denied(self.bob.put_bucket_tagging, Bucket="acct-dropbox",
                    Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
        self.denied(self.bob.delete_bucket, Bucket="acct-dropbox")
        # bob owns his object: only he may tag it.
        self.bob.put_object_tagging(Bucket="acct-dropbox", Key="by-bob", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
        self.denied(self.alice.put_object_tagging, Bucket="acct-dropbox", Key="by-bob",
                    Tagging={"TagSet": [{"Key": "k", "Value": "x"}]})
        # Multipart uploads belong to their initiator too.
        up = self.bob.create_multipart_upload(Bucket="acct-dropbox", Key="mp")
        part = self.bob.upload_part(Bucket="acct-dropbox", Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
        self.bob.complete_multipart_upload(Bucket="acct-dropbox", Key="mp", UploadId=up["UploadId"],
                                           MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        self.assertEqual(self.bob.get_object_acl(Bucket="acct-dropbox", Key="mp")["Owner"]["ID"], "bob")
        self.denied(self.alice.get_object, Bucket="acct-dropbox", Key="mp")
        # Taking WRITE away shuts bob out again.
        self.alice.put_bucket_acl(Bucket="acct-dropbox", ACL="private")
        self.denied(self.bob.put_object, Bucket="acct-dropbox", Key="late", Body=b"x")
        self.denied(self.bob.list_objects_v2, Bucket="acct-dropbox")
        grants = self.alice.get_bucket_acl(Bucket="acct-dropbox")["Grants"]
        self.assertEqual([g["Grantee"].get("ID") for g in grants], ["alice"])


    def pab(self, **flags):
        config = {k: flags.get(k, False) for k in
                  ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")}
        self.alice.put_public_access_block(Bucket="acct-pab", PublicAccessBlockConfiguration=config)
        return config

    def put_policy(self, bucket, *statements, client=None):
        (client or self.alice).put_bucket_policy(
            Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))

    def test_bucket_policies(self):
        a, b = self.alice, self.bob
        a.create_bucket(Bucket="acct-pol")
        b.create_bucket(Bucket="acct-pol-bob")
        arn = "arn:aws:s3:::acct-pol"
        for key in ("shared/a", "private", "keep/a", "gone", "secure/x", "net/x", "far/x"):
            a.put_object(Bucket="acct-pol", Key=key, Body=key.encode())
        self.put_policy(
            "acct-pol",
            {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:GetObject",
             "Resource": arn + "/shared/*"},
            {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::bob:root"]}, "Action": "s3:ListBucket",
             "Resource": arn, "Condition": {"StringLike": {"s3:prefix": "shared/*"},
                                            "NumericLessThanEquals": {"s3:max-keys": 100}}},
            {"Effect": "Allow", "Principal": {"CanonicalUser": "bob"}, "Action": ["s3:PutObject", "s3:DeleteObject"],
             "Resource": arn + "/${aws:username}/*"},
            # Deny wins, over the owner too.
            {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject*", "Resource": arn + "/keep/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": arn + "/secure/*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": arn + "/net/*",
             "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": arn + "/far/*",
             "Condition": {"IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}})
        # Another account: what the policy allows, and nothing more.
        self.assertEqual(b.get_object(Bucket="acct-pol", Key="shared/a")["Body"].read(), b"shared/a")
        self.denied(b.get_object, Bucket="acct-pol", Key="private")
        self.assertEqual([o["Key"] for o in b.list_objects_v2(Bucket="acct-pol", Prefix="shared/", MaxKeys=10)
                          ["Contents"]], ["shared/a"])
        self.denied(b.list_objects_v2, Bucket="acct-pol")  # no s3:prefix
        self.denied(b.list_objects_v2, Bucket="acct-pol", Prefix="shared/")  # no s3:max-keys
        self.denied(b.list_objects_v2, Bucket="acct-pol", Prefix="shared/", MaxKeys=1000)
        self.denied(b.list_objects_v2, Bucket="acct-pol", Prefix="private", MaxKeys=10)
        b.put_object(Bucket="acct-pol", Key="bob/notes", Body=b"n")
        self.denied(b.put_object, Bucket="acct-pol", Key="alice/notes", Body=b"n")
        self.assertEqual(b.get_object_acl(Bucket="acct-pol", Key="bob/notes")["Owner"]["ID"], "bob")
        b.delete_object(Bucket="acct-pol", Key="bob/notes")
        # A copy's source is read through its bucket's policy.
        b.copy_object(Bucket="acct-pol-bob", Key="c", CopySource={"Bucket": "acct-pol", "Key": "shared/a"})
        self.denied(b.copy_object, Bucket="acct-pol-bob", Key="c2",
                    CopySource={"Bucket": "acct-pol", "Key": "private"})
        # Deny: the owner may not delete keep/*, neither alone nor in a DeleteObjects.
        self.denied(a.delete_object, Bucket="acct-pol", Key="keep/a")
        out = a.delete_objects(Bucket="acct-pol", Delete={"Objects": [{"Key": "keep/a"}, {"Key": "gone"}]})
        self.assertEqual([(e["Key"], e["Code"]) for e in out["Errors"]], [("keep/a", "AccessDenied")])
        self.assertEqual([d["Key"] for d in out["Deleted"]], ["gone"])
        self.assertEqual(a.get_object(Bucket="acct-pol", Key="keep/a")["Body"].read(), b"keep/a")
        # Conditions on the connection: plain HTTP from loopback.
        self.denied(a.get_object, Bucket="acct-pol", Key="secure/x")
        self.assertEqual(a.get_object(Bucket="acct-pol", Key="net/x")["Body"].read(), b"net/x")
        self.denied(a.get_object, Bucket="acct-pol", Key="far/x")
        self.assertFalse(a.get_bucket_policy_status(Bucket="acct-pol")["PolicyStatus"]["IsPublic"])
        self.denied(b.get_bucket_policy_status, Bucket="acct-pol")
        self.denied(b.get_bucket_policy, Bucket="acct-pol")
        # Even a Deny of everything leaves the owner its policy.
        self.put_policy("acct-pol", {"Effect": "Deny", "Principal": {"AWS": "alice"}, "Action": "s3:*",
                                     "Resource": [arn, arn + "/*"]})
        self.denied(a.list_objects_v2, Bucket="acct-pol")
        self.denied(a.get_object, Bucket="acct-pol", Key="private")
        self.assertIn("Deny", a.get_bucket_policy(Bucket="acct-pol")["Policy"])
        a.delete_bucket_policy(Bucket="acct-pol")
        self.assertEqual(a.get_object(Bucket="acct-pol", Key="private")["Body"].read(), b"private")
        with self.assertRaises(ClientError) as e:
            a.get_bucket_policy_status(Bucket="acct-pol")
        self.assertEqual(code(e), "NoSuchBucketPolicy")
        # Anonymous reads narrowed to loopback: allowed, and not public; without the condition public.
        read = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": arn + "/shared/*"}
        self.put_policy("acct-pol", dict(read, Condition={"IpAddress": {"aws:SourceIp": ["127.0.0.1/32", "::1"]}}))
        self.assertEqual(self.anon_get("/acct-pol/shared/a"), (200, b"shared/a"))
        self.assertEqual(self.anon_get("/acct-pol/private")[0], 403)
        self.assertFalse(a.get_bucket_policy_status(Bucket="acct-pol")["PolicyStatus"]["IsPublic"])
        self.put_policy("acct-pol", read)
        self.assertTrue(a.get_bucket_policy_status(Bucket="acct-pol")["PolicyStatus"]["IsPublic"])

    def test_bucket_policies_refused(self):
        a = self.alice
        a.create_bucket(Bucket="acct-pol-bad")
        arn = "arn:aws:s3:::acct-pol-bad"
        kept = {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:GetObject", "Resource": arn + "/*"}
        self.put_policy("acct-pol-bad", kept)
        get = dict(kept)
        for statement, want, named in (
                (dict(get, Condition={"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}),
                 "MalformedPolicy", "DateLessThan"),
                (dict(get, Condition={"StringEquals": {"s3:ExistingObjectTag/team": "x"}}),
                 "MalformedPolicy", "s3:ExistingObjectTag/team"),
                (dict(get, Condition={"ForAllValues:StringLike": {"aws:username": "x"}}),
                 "MalformedPolicy", "ForAllValues:StringLike"),
                (dict(get, Condition={"Bool": {"s3:prefix": "true"}}), "MalformedPolicy", "s3:prefix"),
                (dict(get, Principal={"AWS": "mallory"}), "MalformedPolicy", "mallory"),
                (dict(get, Principal="*", Action="s3:PutObject"), "NotImplemented", "s3:PutObject"),
                (dict(get, Action="s3:PutReplicationConfiguration", Resource=arn), "NotImplemented",
                 "s3:PutReplicationConfiguration"),
                (dict(get, Principal={"Service": "logging.s3.amazonaws.com"}), "NotImplemented", "Service")):
            with self.assertRaises(ClientError) as e:
                self.put_policy("acct-pol-bad", statement)
            self.assertEqual(code(e), want, statement)
            self.assertIn(named, e.exception.response["Error"]["Message"], statement)
        # Nothing refused was stored.
        self.assertEqual(json.loads(a.get_bucket_policy(Bucket="acct-pol-bad")["Policy"])["Statement"], [kept])

    def control(self, user):
        """boto3's S3 Control client for USER (an account ID here is the user's name)."""
        key, secret = self.keys[user]
        c = boto3.client("s3control", endpoint_url=self.d.endpoint, region_name=lsd.REGION,
                         aws_access_key_id=key, aws_secret_access_key=secret,
                         config=BotoConfig(retries={"max_attempts": 1}))

        # The SDK puts the account ID in front of the endpoint's host (ACCOUNT.s3-control...),
        # which an IP address endpoint cannot take: the request goes to the address itself.
        def unprefix(request, **_):
            request.url = re.sub(r"://[^/]*?\.(127\.0\.0\.1:)", r"://\1", request.url, count=1)
        c.meta.events.register("before-sign", unprefix)
        return c

    def test_account_public_access_block(self):
        alice, bob, ctl = self.alice, self.bob, self.control("alice")
        self.addCleanup(ctl.delete_public_access_block, AccountId="alice")  # for the other tests
        with self.assertRaises(ClientError) as e:
            ctl.get_public_access_block(AccountId="alice")
        self.assertEqual(code(e), "NoSuchPublicAccessBlockConfiguration")
        alice.create_bucket(Bucket="acct-wide")
        alice.put_object(Bucket="acct-wide", Key="pub", Body=b"pub", ACL="public-read")
        self.assertEqual(self.anon_get("/acct-wide/pub"), (200, b"pub"))
        ctl.put_public_access_block(AccountId="alice", PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True})
        self.assertEqual(ctl.get_public_access_block(AccountId="alice")["PublicAccessBlockConfiguration"],
                         {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
                          "RestrictPublicBuckets": False})
        # It applies to every bucket of the account, though none has a configuration of its own.
        self.assertEqual(self.anon_get("/acct-wide/pub")[0], 403)
        with self.assertRaises(ClientError) as e:
            alice.put_object(Bucket="acct-wide", Key="pub2", Body=b"x", ACL="public-read")
        self.assertEqual(code(e), "AccessDenied")
        with self.assertRaises(ClientError) as e:
            alice.create_bucket(Bucket="acct-wide-pub", ACL="public-read")
        self.assertEqual(code(e), "AccessDenied")
        with self.assertRaises(ClientError) as e:
            alice.head_bucket(Bucket="acct-wide-pub")
        self.assertIn(code(e), ("404", "NoSuchBucket"))
        with self.assertRaises(ClientError) as e:
            alice.get_public_access_block(Bucket="acct-wide")
        self.assertEqual(code(e), "NoSuchPublicAccessBlockConfiguration")
        # Another account's is not bob's to read or change, and does not reach bob's buckets.
        for call in (lambda c: c.get_public_access_block(AccountId="alice"),
                     lambda c: c.delete_public_access_block(AccountId="alice")):
            with self.assertRaises(ClientError) as e:
                call(self.control("bob"))
            self.assertEqual(code(e), "AccessDenied")
        bob.create_bucket(Bucket="acct-bob-public", ACL="public-read")
        self.assertEqual(self.anon_get("/acct-bob-public")[0], 200)
        # BlockPublicPolicy; the ACL settings off again.
        ctl.put_public_access_block(AccountId="alice", PublicAccessBlockConfiguration={"BlockPublicPolicy": True})
        public = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acct-wide/*"}]})
        with self.assertRaises(ClientError) as e:
            alice.put_bucket_policy(Bucket="acct-wide", Policy=public)
        self.assertEqual(code(e), "AccessDenied")
        self.assertEqual(self.anon_get("/acct-wide/pub"), (200, b"pub"))
        # A malformed document changes nothing; other S3 Control operations are not implemented.
        headers, *_ = s3raw.sign(self.keys["alice"][0], self.keys["alice"][1], "PUT",
                                 "/v20180820/configuration/publicAccessBlock", [],
                                 {"host": f"127.0.0.1:{self.d.port}", "x-amz-account-id": "alice",
                                  "content-length": "9"}, hashlib.sha256(b"<Nope/>xx").hexdigest())
        st, _, out = s3raw.send(self.d.port, "PUT", "/v20180820/configuration/publicAccessBlock", headers,
                                b"<Nope/>xx")
        self.assertEqual(st, 400, out)
        self.assertTrue(ctl.get_public_access_block(AccountId="alice")["PublicAccessBlockConfiguration"]
                        ["BlockPublicPolicy"])
        with self.assertRaises(ClientError) as e:
            ctl.list_access_points(AccountId="alice")
        self.assertEqual(code(e), "NotImplemented")
        ctl.delete_public_access_block(AccountId="alice")
        with self.assertRaises(ClientError) as e:
            ctl.get_public_access_block(AccountId="alice")
        self.assertEqual(code(e), "NoSuchPublicAccessBlockConfiguration")
        alice.put_bucket_policy(Bucket="acct-wide", Policy=public)

    def test_public_access_block(self):
        a = self.alice
        a.create_bucket(Bucket="acct-pab", ACL="public-read")
        with self.assertRaises(ClientError) as e:
            a.get_public_access_block(Bucket="acct-pab")
        self.assertEqual(code(e), "NoSuchPublicAccessBlockConfiguration")
        a.put_object(Bucket="acct-pab", Key="open", Body=b"OPEN", ACL="public-read")
        a.put_object(Bucket="acct-pab", Key="members", Body=b"M", ACL="authenticated-read")
        a.put_object(Bucket="acct-pab", Key="closed", Body=b"C")
        self.assertEqual(self.anon_get("/acct-pab/open"), (200, b"OPEN"))
        self.assertEqual(self.anon_get("/acct-pab?list-type=2")[0], 200)
        # Only the owner configures it.
        self.denied(self.bob.get_public_access_block, Bucket="acct-pab")
        self.denied(self.bob.put_public_access_block, Bucket="acct-pab",
                    PublicAccessBlockConfiguration={"IgnorePublicAcls": False})
        # IgnorePublicAcls: public grants (AllUsers, AuthenticatedUsers) stay stored but no longer
        # let anyone in.
        config = self.pab(IgnorePublicAcls=True)
        self.assertEqual(a.get_public_access_block(Bucket="acct-pab")["PublicAccessBlockConfiguration"], config)
        self.assertEqual(self.anon_get("/acct-pab/open")[0], 403)
        self.assertEqual(self.anon_get("/acct-pab?list-type=2")[0], 403)
        self.denied(self.bob.get_object, Bucket="acct-pab", Key="members")
        self.denied(self.bob.copy_object, Bucket="acct-bob", Key="copied", CopySource="acct-pab/open")
        self.assertEqual(a.get_object(Bucket="acct-pab", Key="open")["Body"].read(), b"OPEN")
        grants = a.get_object_acl(Bucket="acct-pab", Key="open")["Grants"]
        self.assertIn("AllUsers", str(grants))
        # While that is on, new public ACLs are still accepted (only ignored).
        a.put_object(Bucket="acct-pab", Key="open2", Body=b"2", ACL="public-read")
        self.assertEqual(self.anon_get("/acct-pab/open2")[0], 403)
        # BlockPublicAcls: every request setting a public ACL is refused, and nothing changes.
        self.pab(BlockPublicAcls=True)
        self.assertEqual(self.anon_get("/acct-pab/open"), (200, b"OPEN"))  # existing grants honoured
        for call, kwargs in ((a.put_object, {"Key": "new", "Body": b"n", "ACL": "public-read"}),
                             (a.put_object, {"Key": "new", "Body": b"n", "ACL": "authenticated-read"}),
                             (a.put_object, {"Key": "new", "Body": b"n",
                                             "GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'}),
                             (a.put_object_acl, {"Key": "closed", "ACL": "public-read"}),
                             (a.put_bucket_acl, {"ACL": "public-read"}),
                             (a.copy_object, {"Key": "new", "CopySource": "acct-pab/closed", "ACL": "public-read"}),
                             (a.create_multipart_upload, {"Key": "new", "ACL": "public-read"})):
            with self.assertRaises(ClientError) as e:
                call(Bucket="acct-pab", **kwargs)
            self.assertEqual(code(e), "AccessDenied", kwargs)
        self.assertEqual(self.anon_get("/acct-pab/closed")[0], 403)
        self.assertNotIn("Uploads", a.list_multipart_uploads(Bucket="acct-pab"))
        with self.assertRaises(ClientError):
            a.head_object(Bucket="acct-pab", Key="new")
        a.put_object(Bucket="acct-pab", Key="new", Body=b"n", ACL="private")
        a.put_object_acl(Bucket="acct-pab", Key="new", GrantRead='id="bob"')
        self.assertEqual(self.bob.get_object(Bucket="acct-pab", Key="new")["Body"].read(), b"n")
        # BlockPublicPolicy: a policy granting everyone is refused, not stored.
        self.pab(BlockPublicPolicy=True)
        policy = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
                  '"Action":"s3:GetObject","Resource":"arn:aws:s3:::acct-pab/*"}]}')
        with self.assertRaises(ClientError) as e:
            a.put_bucket_policy(Bucket="acct-pab", Policy=policy)
        self.assertEqual(code(e), "AccessDenied")
        with self.assertRaises(ClientError) as e:
            a.get_bucket_policy(Bucket="acct-pab")
        self.assertEqual(code(e), "NoSuchBucketPolicy")
        # RestrictPublicBuckets: a public policy stored before lets no one but the owner in.
        a.delete_public_access_block(Bucket="acct-pab")
        a.put_bucket_policy(Bucket="acct-pab", Policy=policy)
        self.assertEqual(self.anon_get("/acct-pab/closed"), (200, b"C"))
        self.pab(RestrictPublicBuckets=True)
        self.assertEqual(self.anon_get("/acct-pab/closed")[0], 403)
        self.denied(self.bob.get_object, Bucket="acct-pab", Key="closed")
        self.assertEqual(a.get_object(Bucket="acct-pab", Key="closed")["Body"].read(), b"C")
        # Deleted: everything public again, as before.
        a.delete_public_access_block(Bucket="acct-pab")
        with self.assertRaises(ClientError) as e:
            a.get_public_access_block(Bucket="acct-pab")
        self.assertEqual(code(e), "NoSuchPublicAccessBlockConfiguration")
        self.assertEqual(self.anon_get("/acct-pab/closed"), (200, b"C"))
        self.assertEqual(self.anon_get("/acct-pab/open2"), (200, b"2"))
        # A document that is not one is refused.
        body = (b'<PublicAccessBlockConfiguration><BlockPublicAcls>yes</BlockPublicAcls>'
                b'</PublicAccessBlockConfiguration>')
        headers, *_ = s3raw.sign(self.keys["alice"][0], self.keys["alice"][1], "PUT", "/acct-pab",
                                 [("publicAccessBlock", "")],
                                 {"host": f"127.0.0.1:{self.d.port}", "content-length": str(len(body))},
                                 hashlib.sha256(body).hexdigest())
        st, _, resp = s3raw.send(self.d.port, "PUT", "/acct-pab", headers, body, query="publicAccessBlock=")
        self.assertEqual(st, 400, resp)
        self.assertIn(b"MalformedXML", resp)
        with self.assertRaises(ClientError) as e:
            a.get_public_access_block(Bucket="acct-pab")
        self.assertEqual(code(e), "NoSuchPublicAccessBlockConfiguration")

if __name__ == "__main__":
    unittest.main()
