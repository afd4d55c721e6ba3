#!/usr/bin/env python3
"""GSLB failover time: from a region's load balancer failing (its TCP listener closed) until
`dig` no longer gets its VIP, and back after it recovers.

  bench/lb/gslb_failover.py [BUILD_DIR] [ROUNDS=5] [INTERVAL_MS=1000] [FALL=2] [TTL=5]

(after `scripts/build.sh photon-server flashdns`). Two regions, 127.0.0.2 and 127.0.0.3, each a
TCP listener on one port. Measured in the same rounds, on the same failure:
  - the GlobalService: photon-server's gslb provider, three checkers (photon-server and two
    flashdns through /v1/probe), quorum 2, records written into flashdns;
  - the peer: flashdns's own health-checked records (one vantage point, docs/flashdns.md
    "GSLB: health-checked records") with the same interval, fall, rise and TTL.
Failover = removal from the answer + TTL (how long a resolver may still hand out the cached
VIP); the target is 10 s, Route 53's fast checks are about 30 s + TTL."""
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "flashdns"))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
import harness  # noqa: E402
from provider_harness import Http, start_photon_server, wait_until  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
INTERVAL_MS = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
FALL = int(sys.argv[4]) if len(sys.argv) > 4 else 2
TTL = int(sys.argv[5]) if len(sys.argv) > 5 else 5
VIPS = ("127.0.0.2", "127.0.0.3")



def answer(dns, name):
    return sorted(a[4] for a in dns.dig(name, "A")["answer"] if a[3] == "A")


def time_until(fns, timeout):
    """Polls every 20 ms; the seconds until each of fns() first held (None: never)."""
    start, took = time.time(), [None] * len(fns)
    while time.time() - start < timeout and None in took:
        for i, fn in enumerate(fns):
            if took[i] is None and fn():
                took[i] = time.time() - start
        time.sleep(0.02)
    return took


def main():
    tmp = harness.make_tmp("photon-gslb-bench-")
    for sub in ("a", "b"):
        os.makedirs(os.path.join(tmp, sub))
    dns = harness.FlashDns(os.path.join(BUILD, "src/flashdns/flashdns"), [],
                           workdir=os.path.join(tmp, "a"), listen=("127.0.0.1",))
    dns.start(wait_name="nothing.test")
    checker = harness.FlashDns(os.path.join(BUILD, "src/flashdns/flashdns"), [],
                               workdir=os.path.join(tmp, "b"), listen=("127.0.0.1",))
    checker.start(wait_name="nothing.test")
    port = harness.free_port()
    regions = {vip: harness.TcpRegion(vip, port, start=False) for vip in VIPS}
    for r in regions.values():
        r.start()
    token_a = os.path.join(dns.data_dir, "api.token")
    config = os.path.join(tmp, "server.yaml")
    with open(config, "w") as f:
        f.write("providers:\n"
                "  - driver: flashdns\n    endpoint: http://127.0.0.1:%d\n    token_file: %s\n"
                "  - driver: gslb\n    endpoint: http://127.0.0.1:%d\n    token_file: %s\n"
                "    checkers: self, flashdns, http://127.0.0.1:%d=%s\n    quorum: 2\n" % (
                    dns.api_port, token_a, dns.api_port, token_a, checker.api_port,
                    os.path.join(checker.data_dir, "api.token")))
    api_port = harness.free_port()
    server = start_photon_server(os.path.join(BUILD, "src/server/photon-server"), config,
                                 os.path.join(tmp, "server"), api_port, tmp)
    try:
        with open(os.path.join(tmp, "server", "admin.token")) as f:
            api = Http("http://127.0.0.1:%d" % api_port, f.read().strip())
        flash = Http("http://127.0.0.1:%d" % dns.api_port, dns.token())
        check = {"port": port, "intervalMs": INTERVAL_MS, "timeoutMs": min(500, INTERVAL_MS),
                 "fall": FALL, "rise": 2}
        api.call("POST", "/v1/namespaces/bench/dnszones", {
            "kind": "DnsZone", "metadata": {"name": "gslb"}, "spec": {"name": "gslb.test."}})
        code, body = api.call("POST", "/v1/namespaces/bench/globalservices", {
            "kind": "GlobalService", "metadata": {"name": "web"},
            "spec": {"zone": "gslb", "name": "web", "ttl": TTL, "healthCheck": check,
                     "members": [{"address": v} for v in VIPS]}})
        assert code == 202, body
        # The peer: flashdns's own checks, same settings, in a zone of its own.
        flash.call("POST", "/v1/zones", {"name": "peer.test.", "ns": ["ns.peer.test."]})
        for vip in VIPS:
            code, body = flash.call("POST", "/v1/zones/peer.test./records", {
                "name": "web", "type": "A", "ttl": TTL, "data": vip,
                "health_check": {"type": "tcp", "port": port, "interval_ms": INTERVAL_MS,
                                 "timeout_ms": min(500, INTERVAL_MS), "fall": FALL, "rise": 2}})
            assert code == 201, body
        both = sorted(VIPS)
        wait_until("both names answer both VIPs", lambda: answer(dns, "web.gslb.test") == both
                   and answer(dns, "web.peer.test") == both, 20)
        rows = []
        limit = 10 + FALL * INTERVAL_MS / 1000 * 3
        for i in range(ROUNDS):
            load = os.getloadavg()[0]
            regions[VIPS[1]].stop()
            down = time_until([lambda: answer(dns, "web.gslb.test") == [VIPS[0]],
                               lambda: answer(dns, "web.peer.test") == [VIPS[0]]], limit)
            regions[VIPS[1]].start()
            up = time_until([lambda: answer(dns, "web.gslb.test") == both,
                             lambda: answer(dns, "web.peer.test") == both], limit)
            rows.append((down, up))
            print("round %d (load %.1f): out of the answer GlobalService %s s, flashdns-only %s s;"
                  " back %s s / %s s" % (i + 1, load, *(("%.2f" % x) if x is not None else "never"
                                                        for x in down + up)), flush=True)
            wait_until("both back", lambda: answer(dns, "web.gslb.test") == both and
                       answer(dns, "web.peer.test") == both, limit)

        def med(col, j):
            vals = [r[col][j] for r in rows if r[col][j] is not None]
            return statistics.median(vals) if vals else float("nan")
        gs_out, peer_out = med(0, 0), med(0, 1)
        print("\nGSLB failover (interval %d ms, fall %d, TTL %d s, %d rounds, medians):" % (
            INTERVAL_MS, FALL, TTL, ROUNDS))
        print("  GlobalService (3 checkers, quorum 2): out of the answer %.2f s, failover incl. "
              "TTL %.2f s, back %.2f s" % (gs_out, gs_out + TTL, med(1, 0)))
        print("  flashdns-only checks (1 vantage point): out of the answer %.2f s, failover "
              "incl. TTL %.2f s, back %.2f s" % (peer_out, peer_out + TTL, med(1, 1)))
        print("  ratio GlobalService / flashdns-only (out of the answer): %.2f; target <= 10 s "
              "incl. TTL; Route 53 fast checks ~30 s + TTL" % (gs_out / peer_out))
    finally:
        server.stop()
        checker.stop()
        dns.stop()
        for r in regions.values():
            r.stop()


if __name__ == "__main__":
    main()
