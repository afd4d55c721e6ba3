"""A tiny independent SigV4 signer and raw HTTP sender for requests SDKs will not make:
streaming chunk-signed uploads, missing Content-Length, virtual-host addressing."""
import hashlib
import hmac
import http.client
import time
from urllib.parse import quote

REGION = "us-east-1"


def _h(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, date, region=REGION):
    k = _h(("AWS4" + secret).encode(), date)
    k = _h(k, region)
    k = _h(k, "s3")
    return _h(k, "aws4_request")


def sign(access_key, secret, method, path, query, headers, payload_hash, region=REGION):
    """Returns (headers with authorization, signing key, signature, amz_date, scope)."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    headers = {k.lower(): v for k, v in headers.items()}
    headers["x-amz-date"] = amz_date
    headers["x-amz-content-sha256"] = payload_hash
    names = sorted(headers)
    canon_headers = "".join(f"{k}:{headers[k].strip()}\n" for k in names)
    canon_query = "&".join(sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query))
    creq = "\n".join([method, quote(path, safe="/-_.~"), canon_query, canon_headers, ";".join(names), payload_hash])
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = signing_key(secret, amz_date[:8], region)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={sig}")
    return headers, key, sig, amz_date, scope


def chunk_signature(key, amz_date, scope, prev, data):
    sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev,
                     hashlib.sha256(b"").hexdigest(), hashlib.sha256(data).hexdigest()])
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def aws_chunked(key, amz_date, scope, seed, data, chunk_size=65536, corrupt=False):
    out, prev = b"", seed
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for c in chunks:
        sig = chunk_signature(key, amz_date, scope, prev, c)
        if corrupt and c:
            c = bytes([c[0] ^ 1]) + c[1:]
        out += f"{len(c):x};chunk-signature={sig}\r\n".encode() + c + b"\r\n"
        prev = sig
    return out


def send(port, method, path, headers, body=b"", query=""):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    target = quote(path, safe="/-_.~") + (("?" + query) if query else "")
    conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    if body:
        conn.send(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data
