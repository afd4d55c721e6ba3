"""End-to-end tests: a real flashdns answering real dig queries (UDP, TCP, IPv4, IPv6),
AXFR, reload without dropped queries, the REST API and metrics."""
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BINARY = os.environ.get("FLASHDNS_BIN", "flashdns")


def zones_in(tmp):
    """Copies the test zones into tmp so tests may edit them."""
    for f in os.listdir(harness.DATA):
        shutil.copy(os.path.join(harness.DATA, f), tmp)
    return [
        {"name": "example.com.", "file": os.path.join(tmp, "example.com.zone"),
         "allow_transfer": ["127.0.0.1"]},
        {"name": "example.net", "file": os.path.join(tmp, "example.net.zone")},
    ]


class ServingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.FlashDns(BINARY, [])
        cls.srv = harness.FlashDns(BINARY, zones_in(cls.srv.tmp), workdir=cls.srv.tmp)
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def q(self, *args):
        return self.srv.dig(*args)

    def test_answer_is_authoritative_and_echoes_case(self):
        r = self.q("WwW.ExAmple.CoM", "A")
        self.assertEqual(r["status"], "NOERROR")
        self.assertIn("aa", r["flags"])
        self.assertIn("WwW.ExAmple.CoM.", r["raw"])
        self.assertEqual(sorted(x[4] for x in r["answer"]), ["192.0.2.80", "192.0.2.81"])
        # The zone's NS in authority, their addresses in additional.
        self.assertEqual(len(r["authority"]), 2)
        self.assertIn(("ns1.example.com.", 3600, "IN", "A", "192.0.2.53"), r["additional"])

    def test_ipv6_listener_and_tcp(self):
        r = harness.dig("::1", self.srv.port, "www.example.com", "AAAA")
        self.assertEqual([x[4] for x in r["answer"]], ["2001:db8::80"])
        r = self.q("+tcp", "www.example.com", "AAAA")
        self.assertEqual([x[4] for x in r["answer"]], ["2001:db8::80"])

    def test_nxdomain_with_soa_and_negative_ttl(self):
        r = self.q("nope.example.com", "A")
        self.assertEqual(r["status"], "NXDOMAIN")
        self.assertIn("aa", r["flags"])
        self.assertEqual(len(r["authority"]), 1)
        soa = r["authority"][0]
        self.assertEqual(soa[3], "SOA")
        self.assertEqual(soa[1], 300)  # min(SOA TTL 3600, minimum 300)

    def test_nodata(self):
        r = self.q("www.example.com", "MX")
        self.assertEqual(r["status"], "NOERROR")
        self.assertEqual(r["answer"], [])
        self.assertEqual(r["authority"][0][3], "SOA")

    def test_cname_chain(self):
        r = self.q("alias.example.com", "A")
        types = [x[3] for x in r["answer"]]
        self.assertEqual(types, ["CNAME", "CNAME", "A", "A"])
        r = self.q("ext.example.com", "A")  # target outside the zone: not followed
        self.assertEqual([x[3] for x in r["answer"]], ["CNAME"])
        r = self.q("loop1.example.com", "A")  # a loop ends, once round
        self.assertEqual(len(r["answer"]), 2)
        r = self.q("alias.example.com", "CNAME")
        self.assertEqual([x[3] for x in r["answer"]], ["CNAME"])

    def test_wildcards(self):
        r = self.q("anything.wild.example.com", "A")
        self.assertEqual(r["answer"], [("anything.wild.example.com.", 3600, "IN", "A",
                                        "192.0.2.99")])
        r = self.q("a.b.wild.example.com", "TXT")
        self.assertEqual(r["answer"][0][4], '"wildcard"')
        r = self.q("x.wild.example.com", "MX")  # wildcard NODATA
        self.assertEqual((r["status"], r["answer"]), ("NOERROR", []))
        r = self.q("foo.cn.example.com", "A")  # wildcard CNAME, then followed
        self.assertEqual([x[3] for x in r["answer"]], ["CNAME", "A", "A"])
        self.assertEqual(r["answer"][0][0], "foo.cn.example.com.")

    def test_empty_non_terminals(self):
        for name in ("b.c.ent.example.com", "c.ent.example.com", "ent.example.com"):
            r = self.q(name, "A")
            self.assertEqual((r["status"], r["answer"]), ("NOERROR", []), name)
        r = self.q("zz.c.ent.example.com", "A")
        self.assertEqual(r["status"], "NXDOMAIN")

    def test_referral_with_glue(self):
        r = self.q("host.deeper.sub.example.com", "A")
        self.assertEqual(r["status"], "NOERROR")
        self.assertNotIn("aa", r["flags"])
        self.assertEqual(r["answer"], [])
        self.assertEqual(sorted(x[4] for x in r["authority"]),
                         ["ns.elsewhere.net.", "ns.sub.example.com."])
        self.assertEqual(r["additional"], [("ns.sub.example.com.", 3600, "IN", "A",
                                            "192.0.2.200")])
        r = self.q("sub.example.com", "DS")  # DS belongs to the parent side
        self.assertIn("aa", r["flags"])
        self.assertEqual(r["authority"][0][3], "SOA")

    def test_additional_for_mx_ns_srv(self):
        r = self.q("example.com", "MX")
        self.assertIn(("mail.example.com.", 300, "IN", "A", "192.0.2.25"), r["additional"])
        self.assertIn(("mail.example.com.", 3600, "IN", "AAAA", "2001:db8::25"),
                      r["additional"])
        r = self.q("example.com", "NS")
        self.assertIn(("ns2.example.com.", 3600, "IN", "AAAA", "2001:db8::54"), r["additional"])
        r = self.q("_sip._tcp.example.com", "SRV")
        self.assertEqual(r["answer"][0][4], "10 60 5060 sip.example.com.")
        self.assertIn(("sip.example.com.", 3600, "IN", "A", "192.0.2.60"), r["additional"])

    def test_refused_outside_served_zones(self):
        r = self.q("www.example.org", "A")
        self.assertEqual(r["status"], "REFUSED")
        self.assertNotIn("aa", r["flags"])

    def test_record_types_and_escapes(self):
        r = self.q("txt.example.com", "TXT")
        rd = sorted(x[4] for x in r["answer"])
        self.assertEqual(rd, ['"first string" "second \\"quoted\\" string" "unquoted"',
                              '"semi;colon" "back\\\\slash" "ABC"'])
        r = self.q("example.com", "CAA")
        self.assertEqual(r["answer"][0][4], '0 issue "letsencrypt.org"')
        r = self.q("caa.example.com", "CAA")
        self.assertEqual(r["answer"][0][4], '128 tag "value with space"')
        r = self.q("4.2.0.192.in-addr.example.com", "PTR")
        self.assertEqual(r["answer"][0][4], "host.example.com.")
        r = self.q("esc\\.dot.example.com", "A")
        self.assertEqual(r["answer"][0][4], "192.0.2.71")
        r = self.q("ttlunit.example.com", "A")
        self.assertEqual(r["answer"][0][1], 5400)
        r = self.q("inc.example.com", "A")  # from $INCLUDE
        self.assertEqual(r["answer"][0][4], "192.0.2.74")
        r = self.q("x.deep.example.com", "A")  # after $ORIGIN
        self.assertEqual(r["answer"][0][4], "192.0.2.73")
        r = self.q("example.com", "SOA")
        self.assertEqual(r["answer"][0][4].split()[2], "2024010101")

    def test_edns_truncation_and_tcp_fallback(self):
        # Four 200-byte TXT strings: over 512 bytes.
        r = self.q("+noedns", "+ignore", "big.deep.example.com", "TXT")
        self.assertIn("tc", r["flags"])
        self.assertEqual(r["answer"], [])
        r = self.q("+bufsize=512", "+ignore", "big.deep.example.com", "TXT")
        self.assertIn("tc", r["flags"])
        r = self.q("+bufsize=4096", "big.deep.example.com", "TXT")
        self.assertNotIn("tc", r["flags"])
        self.assertEqual(len(r["answer"]), 4)
        self.assertTrue(r["opt"])
        r = self.q("+noedns", "big.deep.example.com", "TXT")  # dig retries over TCP
        self.assertEqual(len(r["answer"]), 4)
        r = self.q("+tcp", "+noedns", "big.deep.example.com", "TXT")
        self.assertEqual(len(r["answer"]), 4)

    def test_edns_version_and_payload(self):
        r = self.q("+edns=1", "+noednsneg", "www.example.com", "A")
        self.assertEqual(r["status"], "BADVERS")
        resp = harness.raw_query(self.srv.port, harness.make_query("www.example.com",
                                                                   edns=(1400, 0)))
        self.assertEqual(resp[-11:-8], b"\x00\x00\x29")

    def test_formerr_and_notimp(self):
        resp = harness.raw_query(self.srv.port, harness.make_query("a.example.com", qdcount=0))
        self.assertEqual(resp[3] & 0xF, 1)
        resp = harness.raw_query(self.srv.port,
                                 harness.make_query("a.example.com", qdcount=2))
        self.assertEqual(resp[3] & 0xF, 1)
        resp = harness.raw_query(self.srv.port,
                                 harness.make_query("www.example.com", flags=2 << 11))
        self.assertEqual(resp[3] & 0xF, 4)  # opcode STATUS: NOTIMP
        r = self.q("+opcode=notify", "example.com", "SOA")
        self.assertEqual(r["status"], "NOTIMP")
        # A response is never answered (no reflection loops).
        self.assertIsNone(harness.raw_query(self.srv.port, harness.make_query(
            "www.example.com", flags=0x8000), timeout=0.5))
        # AXFR over UDP is not served.
        resp = harness.raw_query(self.srv.port, harness.make_query("example.com", qtype=252))
        self.assertEqual(resp[3] & 0xF, 4)

    def test_malformed_packets_do_not_kill_the_server(self):
        for packet in [b"", b"\x12", b"\x12\x34\x00\x00\x00\x01", b"\x00" * 12,
                       b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
                       b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3f" * 300,
                       os.urandom(3000)]:
            harness.raw_query(self.srv.port, packet, timeout=0.2)
        # Truncated TCP frame then close.
        s = socket.create_connection(("127.0.0.1", self.srv.port))
        s.sendall(b"\x00\x40\x12\x34")
        s.close()
        r = self.q("www.example.com", "A")
        self.assertEqual(r["status"], "NOERROR")

    def test_any_is_minimal(self):
        r = self.q("example.com", "ANY")
        self.assertEqual(r["status"], "NOERROR")
        self.assertEqual(len({x[3] for x in r["answer"]}), 1)

    def test_axfr(self):
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.srv.port), "example.com",
                              "AXFR", "+nocmd", "+nostats"], capture_output=True, text=True,
                             timeout=10).stdout
        lines = [l for l in out.splitlines() if l and not l.startswith(";")]
        self.assertEqual(lines[0].split()[3], "SOA")
        self.assertEqual(lines[-1].split()[3], "SOA")
        self.assertEqual(len(lines), 43)  # 42 records and the closing SOA
        self.assertTrue(any("192.0.2.200" in l for l in lines))
        # Not allowed from ::1.
        out = subprocess.run(["dig", "@::1", "-p", str(self.srv.port), "example.com", "AXFR"],
                             capture_output=True, text=True, timeout=10).stdout
        self.assertIn("Transfer failed", out)
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.srv.port), "example.net",
                              "AXFR"], capture_output=True, text=True, timeout=10).stdout
        self.assertIn("Transfer failed", out)

    def test_metrics_and_health(self):
        self.q("www.example.com", "A")
        self.q("www.example.org", "A")
        base = "http://127.0.0.1:%d" % self.srv.api_port
        self.assertEqual(urllib.request.urlopen(base + "/healthz").read(), b"ok\n")
        text = urllib.request.urlopen(base + "/metrics").read().decode()
        self.assertIn('flashdns_queries_total{qtype="A",rcode="NOERROR"}', text)
        self.assertIn('flashdns_queries_total{qtype="A",rcode="REFUSED"}', text)
        self.assertIn("flashdns_query_duration_seconds_bucket", text)


class ReloadAndApiTest(unittest.TestCase):
    def setUp(self):
        self.srv = harness.FlashDns(BINARY, [])
        self.srv = harness.FlashDns(BINARY, zones_in(self.srv.tmp), workdir=self.srv.tmp)
        self.srv.start()

    def tearDown(self):
        self.srv.stop()

    def api(self, method, path, body=None, token=True):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.srv.api_port, path),
                                     method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        if token:
            req.add_header("Authorization", "Bearer " + self.srv.token())
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def edit_zone(self, old, new):
        path = os.path.join(self.srv.tmp, "example.com.zone")
        with open(path) as f:
            text = f.read()
        with open(path + ".new", "w") as f:
            f.write(text.replace(old, new))
        os.rename(path + ".new", path)

    def test_sighup_reload_without_dropping_queries(self):
        stop = threading.Event()
        results = {"sent": 0, "lost": 0}

        def hammer():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1.0)
            qid = 0
            while not stop.is_set():
                qid = (qid + 1) & 0xFFFF
                s.sendto(harness.make_query("www.example.com", qid=qid), ("127.0.0.1",
                                                                          self.srv.port))
                results["sent"] += 1
                try:
                    data = s.recv(4096)
                    if data[:2] != struct.pack("!H", qid) or data[3] & 0xF != 0:
                        results["lost"] += 1
                except socket.timeout:
                    results["lost"] += 1
            s.close()

        t = threading.Thread(target=hammer)
        t.start()
        try:
            for i in range(5):
                self.edit_zone(str(2024010101 + i), str(2024010102 + i))
                self.srv.reload()
                time.sleep(0.3)
        finally:
            stop.set()
            t.join()
        self.assertGreater(results["sent"], 50)
        self.assertEqual(results["lost"], 0)

    def test_reload_picks_up_changes_and_keeps_old_on_error(self):
        self.edit_zone("192.0.2.80", "192.0.2.180")
        self.srv.reload()
        deadline = time.time() + 5
        while time.time() < deadline:
            r = self.srv.dig("www.example.com", "A")
            if "192.0.2.180" in [x[4] for x in r["answer"]]:
                break
            time.sleep(0.1)
        self.assertIn("192.0.2.180", [x[4] for x in r["answer"]])
        # A broken zone: refused with file:line, the previous version keeps serving.
        self.edit_zone("www     IN A   192.0.2.180", "www     IN A   999.0.2.180")
        status, body = self.api("POST", "/v1/reload", {})
        self.assertEqual(status, 400)
        self.assertRegex(body["error"]["message"], r"example\.com\.zone:\d+: bad A address")
        r = self.srv.dig("www.example.com", "A")
        self.assertIn("192.0.2.180", [x[4] for x in r["answer"]])
        self.assertRegex(self.srv.daemon.output(), r"example\.com\.zone:\d+: bad A address")

    def test_api(self):
        token_path = os.path.join(self.srv.data_dir, "api.token")
        self.assertEqual(stat.S_IMODE(os.stat(token_path).st_mode), 0o600)
        self.assertIn("api.token", self.srv.daemon.output())
        status, _ = self.api("GET", "/v1/zones", token=False)
        self.assertEqual(status, 401)
        req = urllib.request.Request("http://127.0.0.1:%d/v1/zones" % self.srv.api_port)
        req.add_header("Authorization", "Bearer wrong")
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            urllib.request.urlopen(req, timeout=5)
        self.assertEqual(ctx.exception.code, 401)

        status, body = self.api("POST", "/v1/zones", {"name": "api.test", "ns": ["ns1.api.test."]})
        self.assertEqual(status, 201, body)
        r = self.srv.dig("api.test", "SOA")
        self.assertEqual(r["status"], "NOERROR")
        serial0 = int(r["answer"][0][4].split()[2])
        status, rec = self.api("POST", "/v1/zones/api.test/records",
                               {"name": "www", "type": "A", "ttl": 60, "data": "203.0.113.7"})
        self.assertEqual(status, 201, rec)
        r = self.srv.dig("www.api.test", "A")  # served at once
        self.assertEqual(r["answer"], [("www.api.test.", 60, "IN", "A", "203.0.113.7")])
        serial1 = int(self.srv.dig("api.test", "SOA")["answer"][0][4].split()[2])
        self.assertGreater(serial1, serial0)
        status, body = self.api("POST", "/v1/zones/api.test/records",
                                {"name": "bad", "type": "A", "data": "not-an-ip"})
        self.assertEqual(status, 400)
        status, body = self.api("POST", "/v1/zones/example.com/records",
                                {"name": "x", "type": "A", "data": "192.0.2.1"})
        self.assertEqual(status, 404)
        status, body = self.api("POST", "/v1/zones", {"name": "example.com."})
        self.assertEqual(status, 409)
        # Persisted: a restart serves it again.
        self.srv.stop()
        self.srv.start()
        r = self.srv.dig("www.api.test", "A")
        self.assertEqual(r["answer"][0][4], "203.0.113.7")
        status, body = self.api("GET", "/v1/zones/api.test")
        self.assertEqual(body["records"][0]["id"], rec["id"])
        status, _ = self.api("DELETE", "/v1/zones/api.test/records/" + rec["id"])
        self.assertEqual(status, 200)
        self.assertEqual(self.srv.dig("www.api.test", "A")["status"], "NXDOMAIN")
        status, _ = self.api("DELETE", "/v1/zones/api.test")
        self.assertEqual(status, 200)
        self.assertEqual(self.srv.dig("www.api.test", "A")["status"], "REFUSED")


class BigZoneTest(unittest.TestCase):
    """A zone larger than one TCP message: AXFR spans several messages."""

    def test_axfr_over_several_messages_and_tcp_pipelining(self):
        srv = harness.FlashDns(BINARY, [])
        path = os.path.join(srv.tmp, "big.test.zone")
        with open(path, "w") as f:
            f.write("$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n")
            for i in range(3000):
                f.write('t%d TXT "%s"\n' % (i, "x" * 100))
        srv = harness.FlashDns(BINARY, [{"name": "big.test.", "file": path,
                                         "allow_transfer": ["127.0.0.0/8"]}], workdir=srv.tmp)
        srv.start(wait_name="big.test")
        try:
            out = subprocess.run(["dig", "@127.0.0.1", "-p", str(srv.port), "big.test", "AXFR"],
                                 capture_output=True, text=True, timeout=20).stdout
            records = [l for l in out.splitlines() if l and not l.startswith(";")]
            self.assertEqual(len(records), 3000 + 3 + 1)
            self.assertRegex(out, r"XFR size: 3004 records \(messages ([2-9]|\d\d+)")
            # Several queries on one TCP connection, answered in order.
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            for i in range(3):
                q = harness.make_query("t%d.big.test" % i, qtype=16, qid=100 + i)
                s.sendall(struct.pack("!H", len(q)) + q)
            for i in range(3):
                n = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
                data = s.recv(n, socket.MSG_WAITALL)
                self.assertEqual(struct.unpack("!H", data[:2])[0], 100 + i)
                self.assertEqual(struct.unpack("!H", data[6:8])[0], 1)  # one answer
            s.close()
        finally:
            srv.stop()


class WildcardListenTest(unittest.TestCase):
    def test_answers_leave_from_the_queried_address(self):
        # Bound to 0.0.0.0, a query to 127.0.0.2 must be answered from 127.0.0.2 (dig
        # rejects replies from an unexpected source).
        srv = harness.FlashDns(BINARY, [])
        srv = harness.FlashDns(BINARY, zones_in(srv.tmp), workdir=srv.tmp,
                               listen=("0.0.0.0", "[::]"))
        srv.start()
        try:
            r = harness.dig("127.0.0.2", srv.port, "www.example.com", "A")
            self.assertEqual(r["status"], "NOERROR", r["raw"])
            self.assertNotIn("unexpected source", r["raw"])
            r = harness.dig("::1", srv.port, "www.example.com", "AAAA")
            self.assertEqual(r["status"], "NOERROR", r["raw"])
        finally:
            srv.stop()


class StartupTest(unittest.TestCase):
    def run_with(self, text, *extra):
        tmp = harness.FlashDns(BINARY, []).tmp
        cfg = os.path.join(tmp, "c.yaml")
        with open(cfg, "w") as f:
            f.write(text)
        return subprocess.run([BINARY, "--config", cfg] + list(extra), capture_output=True,
                              text=True, timeout=10)

    def test_unknown_key_is_refused(self):
        p = self.run_with("listen: ['127.0.0.1:0']\nlisten_typo: 1\n")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("listen_typo", p.stderr)
        p = self.run_with("zones:\n  - name: a.\n    file: x\n    alow_transfer: []\n")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("alow_transfer", p.stderr)

    def test_bad_log_level_and_bad_zone(self):
        p = self.run_with("listen: ['127.0.0.1:0']\n", "--log-level", "chatty")
        self.assertNotEqual(p.returncode, 0)
        zone = os.path.join(harness.DATA, "example.net.zone")
        tmp = harness.FlashDns(BINARY, []).tmp
        bad = os.path.join(tmp, "bad.zone")
        with open(zone) as f, open(bad, "w") as g:
            g.write(f.read() + "oops IN MX notanumber x\n")
        p = self.run_with("listen: ['127.0.0.1:0']\napi: ''\ndata_dir: %s\nzones:\n"
                          "  - {name: example.net., file: %s}\n" % (tmp, bad))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.zone:6:", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
