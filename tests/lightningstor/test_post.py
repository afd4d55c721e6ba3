"""Browser POST uploads (S3 POST Object) through what a web page's backend and browser use:
boto3's generate_presigned_post signs the policy, python-requests and curl -F send the real
multipart/form-data form. What a policy allows is stored (key from ${filename}, Content-Type,
metadata, ACL, tagging, 200/201/204 and redirects); an expired policy, a key outside its
starts-with, a body outside content-length-range, a wrong or tampered signature, a field the
policy does not name and fields lightningstor does not implement are refused with S3's errors,
and nothing is stored for them."""
import hashlib
import os
import re
import subprocess
import unittest
import urllib.parse

import requests
from botocore.exceptions import ClientError

import lsd


def error_code(resp):
    m = re.search(rb"<Code>([^<]*)</Code>", resp.content)
    return m.group(1).decode() if m else None


class PostObjectTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = lsd.Daemon().start()
        cls.s3 = cls.d.client()
        cls.s3.create_bucket(Bucket="web")
        out = subprocess.run([lsd.BIN, "--config", cls.d.config_path, "keys", "create", "bob-key", "--user", "bob"],
                             check=True, capture_output=True, text=True, timeout=30).stdout
        fields = dict(line.split(": ", 1) for line in out.strip().splitlines())
        cls.bob = cls.d.client(fields["access_key_id"], fields["secret_access_key"])

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def post(self, presigned, data, filename="f.bin", extra=None, drop=(), after_file=None):
        fields = {k: v for k, v in presigned["fields"].items() if k not in drop}
        fields.update(extra or {})
        files = [("file", (filename, data))]
        if after_file:
            files.append(after_file)
        return requests.post(presigned["url"], data=fields, files=files, allow_redirects=False, timeout=30)

    def assert_absent(self, key, bucket="web"):
        with self.assertRaises(ClientError) as e:
            self.s3.head_object(Bucket=bucket, Key=key)
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404, key)

    def test_upload_with_conditions_metadata_and_201(self):
        fields = {"Content-Type": "text/plain", "x-amz-meta-origin": "browser", "success_action_status": "201"}
        conditions = [{"Content-Type": "text/plain"}, {"x-amz-meta-origin": "browser"},
                      {"success_action_status": "201"}, ["content-length-range", 1, 1024]]
        p = self.s3.generate_presigned_post("web", "uploads/${filename}", Fields=fields, Conditions=conditions,
                                            ExpiresIn=300)
        r = self.post(p, b"hello from a browser\n", filename="hello.txt")
        self.assertEqual(r.status_code, 201, r.text)
        etag = '"%s"' % hashlib.md5(b"hello from a browser\n").hexdigest()
        self.assertIn("<Key>uploads/hello.txt</Key>", r.text)
        self.assertIn("<Bucket>web</Bucket>", r.text)
        self.assertEqual(r.headers["ETag"], etag)
        self.assertIn("<ETag>%s</ETag>" % etag.replace('"', "&quot;"), r.text)
        got = self.s3.get_object(Bucket="web", Key="uploads/hello.txt")
        self.assertEqual(got["Body"].read(), b"hello from a browser\n")
        self.assertEqual(got["ContentType"], "text/plain")
        self.assertEqual(got["Metadata"], {"origin": "browser"})
        self.assertEqual(got["ETag"], etag)

    def test_large_binary_file_with_boundary_like_bytes_default_204(self):
        # 3 MiB crossing every read buffer, full of CRLFs and "--" that must not end the file early.
        chunk = b"\r\n--\r\n--" + os.urandom(1000) + b"\r\n-"
        data = (chunk * (3 * 1024 * 1024 // len(chunk) + 1))[: 3 * 1024 * 1024 + 7]
        p = self.s3.generate_presigned_post("web", "big.bin", ExpiresIn=300)
        r = self.post(p, data)
        self.assertEqual(r.status_code, 204, r.text)
        self.assertEqual(r.content, b"")
        got = self.s3.get_object(Bucket="web", Key="big.bin")["Body"].read()
        self.assertEqual(hashlib.md5(got).hexdigest(), hashlib.md5(data).hexdigest())
        # An empty file is an empty object.
        p = self.s3.generate_presigned_post("web", "empty", ExpiresIn=300)
        self.assertEqual(self.post(p, b"").status_code, 204)
        self.assertEqual(self.s3.head_object(Bucket="web", Key="empty")["ContentLength"], 0)

    def test_success_action_redirect_and_200(self):
        target = "https://app.example/done?x=1"
        p = self.s3.generate_presigned_post("web", "redir", Fields={"success_action_redirect": target},
                                            Conditions=[{"success_action_redirect": target}], ExpiresIn=300)
        r = self.post(p, b"R")
        self.assertEqual(r.status_code, 303, r.text)
        loc = urllib.parse.urlparse(r.headers["Location"])
        self.assertEqual(loc.netloc, "app.example")
        q = urllib.parse.parse_qs(loc.query)
        self.assertEqual(q["x"], ["1"])
        self.assertEqual(q["bucket"], ["web"])
        self.assertEqual(q["key"], ["redir"])
        self.assertEqual(q["etag"], ['"%s"' % hashlib.md5(b"R").hexdigest()])
        p = self.s3.generate_presigned_post("web", "s200", Fields={"success_action_status": "200"},
                                            Conditions=[{"success_action_status": "200"}], ExpiresIn=300)
        self.assertEqual(self.post(p, b"x").status_code, 200)

    def test_acl_and_tagging_fields_are_applied(self):
        tagging = "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"
        p = self.s3.generate_presigned_post("web", "public", Fields={"acl": "public-read", "tagging": tagging},
                                            Conditions=[{"acl": "public-read"}, {"tagging": tagging}],
                                            ExpiresIn=300)
        self.assertEqual(self.post(p, b"PUBLIC").status_code, 204)
        self.assertEqual(requests.get(self.d.endpoint + "/web/public", timeout=10).content, b"PUBLIC")
        tags = self.s3.get_object_tagging(Bucket="web", Key="public")["TagSet"]
        self.assertEqual(tags, [{"Key": "k", "Value": "v"}])
        # Without the acl field the object is private.
        p = self.s3.generate_presigned_post("web", "private", ExpiresIn=300)
        self.assertEqual(self.post(p, b"PRIVATE").status_code, 204)
        self.assertEqual(requests.get(self.d.endpoint + "/web/private", timeout=10).status_code, 403)

    def test_expired_policy_refused(self):
        p = self.s3.generate_presigned_post("web", "expired", ExpiresIn=-60)
        r = self.post(p, b"late")
        self.assertEqual(r.status_code, 403, r.text)
        self.assertEqual(error_code(r), "AccessDenied")
        self.assertIn("Policy expired", r.text)
        self.assert_absent("expired")

    def test_key_outside_starts_with_refused(self):
        p = self.s3.generate_presigned_post("web", "uploads/${filename}", ExpiresIn=300)
        self.assertIn(["starts-with", "$key", "uploads/"], self._conditions(p))
        r = self.post(p, b"escape", extra={"key": "private/escape"})
        self.assertEqual(r.status_code, 403, r.text)
        self.assertEqual(error_code(r), "AccessDenied")
        self.assertIn("Policy Condition failed", r.text)
        self.assert_absent("private/escape")
        # An exact key is exact.
        p = self.s3.generate_presigned_post("web", "exact", ExpiresIn=300)
        r = self.post(p, b"x", extra={"key": "exact2"})
        self.assertEqual(error_code(r), "AccessDenied")
        self.assert_absent("exact2")

    def _conditions(self, presigned):
        import base64
        import json
        return json.loads(base64.b64decode(presigned["fields"]["policy"]))["conditions"]

    def test_content_length_range_enforced(self):
        p = self.s3.generate_presigned_post("web", "sized", Conditions=[["content-length-range", 5, 10]],
                                            ExpiresIn=300)
        r = self.post(p, b"x" * 100)
        self.assertEqual(r.status_code, 400, r.text)
        self.assertEqual(error_code(r), "EntityTooLarge")
        self.assert_absent("sized")
        r = self.post(p, b"x" * (2 << 20))  # far past the bound: refused as it streams
        self.assertEqual(error_code(r), "EntityTooLarge")
        r = self.post(p, b"xy")
        self.assertEqual(error_code(r), "EntityTooSmall")
        self.assert_absent("sized")
        self.assertEqual(self.post(p, b"x" * 10).status_code, 204)
        self.assertEqual(self.s3.head_object(Bucket="web", Key="sized")["ContentLength"], 10)

    def test_bad_signatures_refused(self):
        p = self.s3.generate_presigned_post("web", "signed", ExpiresIn=300)
        sig = p["fields"]["x-amz-signature"]
        bad = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        r = self.post(p, b"x", extra={"x-amz-signature": bad})
        self.assertEqual(r.status_code, 403, r.text)
        self.assertEqual(error_code(r), "SignatureDoesNotMatch")
        # A policy loosened after signing (any key) no longer matches its signature.
        import base64
        import json
        doc = json.loads(base64.b64decode(p["fields"]["policy"]))
        doc["conditions"] = [c for c in doc["conditions"] if not (isinstance(c, dict) and "key" in c)]
        doc["conditions"].append(["starts-with", "$key", ""])
        loose = base64.b64encode(json.dumps(doc).encode()).decode()
        r = self.post(p, b"x", extra={"policy": loose, "key": "anything"})
        self.assertEqual(error_code(r), "SignatureDoesNotMatch")
        # Signed with a wrong secret.
        wrong = self.d.client(self.d.access_key, "WRONG" + self.d.secret_key[5:])
        r = self.post(wrong.generate_presigned_post("web", "signed", ExpiresIn=300), b"x")
        self.assertEqual(error_code(r), "SignatureDoesNotMatch")
        # Unknown access key.
        other = self.d.client("AKIDUNKNOWN000000000", self.d.secret_key)
        r = self.post(other.generate_presigned_post("web", "signed", ExpiresIn=300), b"x")
        self.assertEqual(error_code(r), "InvalidAccessKeyId")
        # No signature at all: an anonymous write.
        r = self.post(p, b"x", drop=("x-amz-signature", "policy"))
        self.assertEqual(r.status_code, 403)
        self.assertEqual(error_code(r), "AccessDenied")
        self.assert_absent("signed")
        self.assert_absent("anything")

    def test_caller_without_write_permission_refused(self):
        p = self.bob.generate_presigned_post("web", "bobs", ExpiresIn=300)
        r = self.post(p, b"x")
        self.assertEqual(r.status_code, 403, r.text)
        self.assertEqual(error_code(r), "AccessDenied")
        self.assert_absent("bobs")

    def test_form_refusals(self):
        p = self.s3.generate_presigned_post("web", "refused", ExpiresIn=300)
        # A field the policy does not name.
        r = self.post(p, b"x", extra={"x-amz-meta-sneaky": "1"})
        self.assertEqual(error_code(r), "AccessDenied")
        self.assertIn("Extra input fields: x-amz-meta-sneaky", r.text)
        # A field lightningstor does not implement, even when the policy allows it.
        q = self.s3.generate_presigned_post("web", "refused", Fields={"x-amz-security-token": "t"},
                                            Conditions=[{"x-amz-security-token": "t"}], ExpiresIn=300)
        r = self.post(q, b"x")
        self.assertEqual(r.status_code, 501, r.text)
        self.assertEqual(error_code(r), "NotImplemented")
        # SSE-KMS through the form, as through headers: refused.
        q = self.s3.generate_presigned_post("web", "refused", Fields={"x-amz-server-side-encryption": "aws:kms"},
                                            Conditions=[{"x-amz-server-side-encryption": "aws:kms"}],
                                            ExpiresIn=300)
        self.assertEqual(self.post(q, b"x").status_code, 501)
        # A field after the file (S3 would drop it): refused.
        r = self.post(p, b"x", after_file=("x-amz-meta-late", (None, "1")))
        self.assertEqual(r.status_code, 400, r.text)
        # No file, not a form, not a well-formed form.
        r = requests.post(p["url"], data=p["fields"], files=[("x-ignore-note", (None, "no file"))], timeout=30)
        self.assertEqual(error_code(r), "InvalidArgument")
        self.assertIn("exactly one file", r.text)
        r = requests.post(p["url"], data=b"key=refused", headers={"Content-Type": "application/x-www-form-urlencoded"},
                          timeout=30)
        self.assertEqual(r.status_code, 412)
        r = requests.post(p["url"], data=b"--B\r\nnot a part", timeout=30,
                          headers={"Content-Type": "multipart/form-data; boundary=B"})
        self.assertEqual(error_code(r), "MalformedPOSTRequest")
        # Policy documents that are not S3's.
        import base64
        for doc in (b"not json", b'{"conditions": []}', b'{"expiration": "tomorrow", "conditions": []}',
                    b'{"expiration": "2099-01-01T00:00:00Z", "conditions": [["matches", "$key", "x"]]}'):
            r = self.post(p, b"x", extra={"policy": base64.b64encode(doc).decode()})
            self.assertIn(error_code(r), ("InvalidPolicyDocument", "SignatureDoesNotMatch"), doc)
        self.assert_absent("refused")

    def test_curl_form_upload(self):
        p = self.s3.generate_presigned_post("web", "curl/${filename}", ExpiresIn=300)
        path = os.path.join(self.d.tmp, "from-curl.txt")
        with open(path, "wb") as f:
            f.write(b"sent by curl -F\n")
        args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30"]
        for k, v in p["fields"].items():
            args += ["--form-string", f"{k}={v}"]
        args += ["-F", f"file=@{path}", p["url"]]
        out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout
        self.assertEqual(out, "204")
        got = self.s3.get_object(Bucket="web", Key="curl/from-curl.txt")["Body"].read()
        self.assertEqual(got, b"sent by curl -F\n")


if __name__ == "__main__":
    unittest.main()
