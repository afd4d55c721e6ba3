#!/usr/bin/env python3
"""Generates the benchmark zone (about N records) and a dnsperf query file with a fixed mix:
existing names, NXDOMAIN, wildcard and referral queries. Deterministic (seeded).
usage: gen_zone.py OUT_DIR [RECORDS] [QUERIES]"""
import os
import random
import sys

out = sys.argv[1]
total = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
nqueries = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000
origin = "bench.test."
rnd = random.Random(42)

# Shares of the record budget: delegations take 3 records each (2 NS + glue).
n_deleg = total // 50
n_aaaa = total // 20
n_mx = total // 100
n_hosts = total - 3 * n_deleg - n_aaaa - n_mx - 8

with open(os.path.join(out, "bench.test.zone"), "w") as f:
    f.write("$ORIGIN %s\n$TTL 3600\n" % origin)
    f.write("@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n")
    f.write("@ IN NS ns1\n@ IN NS ns2\nns1 IN A 192.0.2.1\nns2 IN A 192.0.2.2\n")
    f.write("*.wild IN A 192.0.2.99\n*.wild IN TXT \"wildcard\"\n@ IN MX 10 h0\n")
    w = f.write
    for i in range(n_hosts):
        w("h%d IN A 10.%d.%d.%d\n" % (i, (i >> 16) & 255, (i >> 8) & 255, i & 255))
    for i in range(n_aaaa):
        w("h%d IN AAAA 2001:db8::%x\n" % (i, i))
    for i in range(n_mx):
        w("h%d IN MX 10 h%d\n" % (i, i + 1))
    for i in range(n_deleg):
        w("sub%d IN NS ns.sub%d\nsub%d IN NS ns.elsewhere.example.\nns.sub%d IN A 198.51.%d.%d\n"
          % (i, i, i, i, (i >> 8) & 255, i & 255))

with open(os.path.join(out, "queries.txt"), "w") as f:
    for _ in range(nqueries):
        r = rnd.random()
        if r < 0.45:
            f.write("h%d.%s A\n" % (rnd.randrange(n_hosts), origin))
        elif r < 0.50:
            f.write("h%d.%s AAAA\n" % (rnd.randrange(n_aaaa), origin))
        elif r < 0.55:
            f.write("h%d.%s MX\n" % (rnd.randrange(n_mx), origin))
        elif r < 0.70:
            f.write("nx%d.%s A\n" % (rnd.randrange(10**9), origin))
        elif r < 0.85:
            f.write("w%d.wild.%s A\n" % (rnd.randrange(10**9), origin))
        else:
            f.write("www.sub%d.%s A\n" % (rnd.randrange(n_deleg), origin))
print("zone: %d records (%d hosts, %d AAAA, %d MX, %d delegations); %d queries"
      % (n_hosts + n_aaaa + n_mx + 3 * n_deleg + 8, n_hosts, n_aaaa, n_mx, n_deleg, nqueries))
