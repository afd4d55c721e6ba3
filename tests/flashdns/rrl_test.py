"""End-to-end tests of UDP response-rate limiting: a real flashdns flooded with one name from
127.0.0.1 over UDP (raw sockets, so every query and reply is seen), then asked over TCP with
real dig. Checks that answers beyond the burst are dropped or sent truncated at the slip
ratio, that TCP still answers, that the /metrics counters agree with what the client saw,
and that with RRL off (or for an exempt client) every query is answered."""
import os
import socket
import struct
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BINARY = os.environ.get("FLASHDNS_BIN", "flashdns")
RATE = 10
SLIP = 2
FLOOD = 100


def zones(tmp):
    return [{"name": "example.com.", "file": os.path.join(harness.DATA, "example.com.zone")}]


def start(rrl_yaml):
    tmp = harness.make_tmp()
    return harness.FlashDns(BINARY, zones(tmp), workdir=tmp, extra=rrl_yaml).start()


def metrics(srv):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % srv.api_port,
                                  timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def answered_a(m):
    return int(m.get('flashdns_queries_total{qtype="A",rcode="NOERROR"}', 0))


def flood(srv, name, count, host="127.0.0.1", names=None):
    """Sends `count` A queries for `name` (or for each of `names`) from one UDP socket as fast
    as it can, waits until the server has accounted for every one (its /metrics), then reads
    every reply. Returns (ids answered in full, ids answered truncated, seconds the sending
    took, /metrics after, /metrics before)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    before = metrics(srv)
    names = names or [name] * count
    began = time.monotonic()
    try:
        for qid, qname in enumerate(names):
            s.sendto(harness.make_query(qname, qid=qid), (host, srv.port))
        sent = time.monotonic() - began
        # Every query ends as an answer, an RRL drop or an RRL slip in the server's counters.
        deadline = time.monotonic() + 10
        while True:
            m = metrics(srv)
            done = sum(m.get(k, 0) - before.get(k, 0) for k in
                       ("flashdns_rrl_dropped_total", "flashdns_rrl_slipped_total"))
            done += answered_a(m) - answered_a(before) + _nx(m) - _nx(before)
            if done >= len(names):
                break
            if time.monotonic() > deadline:
                raise AssertionError("server accounted %d of %d queries" % (done, len(names)))
            time.sleep(0.02)  # polling interval of the deadline loop above
        expect = len(names) - int(m.get("flashdns_rrl_dropped_total", 0) -
                                  before.get("flashdns_rrl_dropped_total", 0))
        full, truncated = [], []
        s.settimeout(2.0)
        while len(full) + len(truncated) < expect:
            data = s.recv(4096)  # a timeout here fails the test: a reply was lost
            qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
            assert flags & 0x8000 and qd == 1, data
            if flags & 0x0200:
                assert an == ns == ar == 0, data
                truncated.append(qid)
            else:
                full.append(qid)
        return full, truncated, sent, m, before
    finally:
        s.close()


def _nx(m):
    return int(m.get('flashdns_queries_total{qtype="A",rcode="NXDOMAIN"}', 0))


class RrlOnTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = start("rrl:\n  rate: %d\n  slip: %d\n  exempt: []\n" % (RATE, SLIP))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def check_flood(self, full, truncated, sent, m, before, count):
        # The burst (one second's worth) is answered, plus what refilled while flooding.
        self.assertGreaterEqual(len(full), RATE)
        self.assertLessEqual(len(full), RATE + int(RATE * sent) + 1)
        limited = count - len(full)
        # Every SLIP-th limited response goes out truncated, the others are dropped.
        self.assertEqual(len(truncated), limited // SLIP)
        slipped = m["flashdns_rrl_slipped_total"] - before.get("flashdns_rrl_slipped_total", 0)
        dropped = m["flashdns_rrl_dropped_total"] - before.get("flashdns_rrl_dropped_total", 0)
        self.assertEqual(slipped, len(truncated))
        self.assertEqual(dropped, limited - limited // SLIP)

    def test_flood_is_limited_and_tcp_still_answers(self):
        full, truncated, sent, m, before = flood(self.srv, "www.example.com", FLOOD)
        self.check_flood(full, truncated, sent, m, before, FLOOD)
        # The first replies are the full ones: limiting starts after the burst.
        self.assertEqual(sorted(full)[:RATE], list(range(RATE)))
        # Still limited over UDP, TCP answers every time.
        for _ in range(3 * RATE):
            r = self.srv.dig("+tcp", "www.example.com", "A")
            self.assertEqual(r["status"], "NOERROR")
            self.assertNotIn("tc", r["flags"])
            self.assertEqual(sorted(x[4] for x in r["answer"]), ["192.0.2.80", "192.0.2.81"])

    def test_nxdomain_is_one_key_per_zone(self):
        # Random names do not each get a fresh budget: NXDOMAIN is grouped by zone.
        names = ["nx%d.example.com" % i for i in range(FLOOD)]
        full, truncated, sent, m, before = flood(self.srv, None, FLOOD, names=names)
        self.check_flood(full, truncated, sent, m, before, FLOOD)

    def test_ipv6_flood_is_limited(self):
        full, truncated, sent, m, before = flood(self.srv, "mail.example.com", FLOOD,
                                                 host="::1")
        self.check_flood(full, truncated, sent, m, before, FLOOD)


class RrlSlipOneTest(unittest.TestCase):
    def test_real_dig_gets_tc_and_retries_over_tcp(self):
        srv = start("rrl:\n  rate: %d\n  slip: 1\n  exempt: []\n" % RATE)
        try:
            full, truncated, _, _, _ = flood(srv, "www.example.com", FLOOD)
            self.assertEqual(len(full) + len(truncated), FLOOD)  # slip 1: nothing dropped
            self.assertLess(len(full), FLOOD // 2)
            # dig over UDP sees TC; by default it then retries over TCP and gets the answer.
            r = srv.dig("+ignore", "+notcp", "www.example.com", "A")
            self.assertIn("tc", r["flags"])
            self.assertEqual(r["answer"], [])
            # The budget refills every second: on a loaded machine the flood's may be back by
            # the time dig runs, so the budget is spent again right before it (a few tries).
            for _ in range(5):
                flood(srv, "www.example.com", FLOOD)
                out = subprocess.run(["dig", "@127.0.0.1", "-p", str(srv.port), "+norec",
                                      "+time=2", "+tries=1", "www.example.com", "A"],
                                     capture_output=True, text=True, timeout=10).stdout
                if "Truncated, retrying in TCP mode" in out:
                    break
            self.assertIn("Truncated, retrying in TCP mode", out)
            self.assertIn("192.0.2.80", out)
        finally:
            srv.stop()


class RrlOffTest(unittest.TestCase):
    def test_rate_zero_answers_every_query(self):
        srv = start("rrl:\n  rate: 0\n  exempt: []\n")
        try:
            full, truncated, _, m, _ = flood(srv, "www.example.com", 3 * FLOOD)
            self.assertEqual((len(full), truncated), (3 * FLOOD, []))
            self.assertEqual(m["flashdns_rrl_dropped_total"], 0)
            self.assertEqual(m["flashdns_rrl_slipped_total"], 0)
        finally:
            srv.stop()

    def test_default_exempts_loopback(self):
        # Default rate 200/s; loopback clients cannot be spoofed from off-host.
        srv = start("")
        try:
            full, truncated, _, _, _ = flood(srv, "www.example.com", 3 * FLOOD)
            self.assertEqual((len(full), truncated), (3 * FLOOD, []))
        finally:
            srv.stop()

    def test_bad_rrl_config_names_the_key(self):
        tmp = harness.make_tmp()
        path = os.path.join(tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write("listen: ['127.0.0.1:0']\napi: ''\ndata_dir: %s\nrrl:\n  slip: 99\n" % tmp)
        p = subprocess.run([BINARY, "--config", path], capture_output=True, text=True,
                                   timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("rrl.slip", p.stderr + p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
