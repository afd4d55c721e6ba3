"""A loopback port for a daemon a Python suite starts: the one way they pick one (the C++ suites'
is tests/free_port.h, the same rule).

Drawn from below the kernel's ephemeral range, not with bind(0): a port bind(0) hands out is
one any process's outgoing connection may take before the daemon binds it. Below that range
only another listener can take it; each process starts at a random place in it, so suites
running side by side rarely meet, and one process never gets the same port twice."""
import itertools
import os
import random
import socket


def _range():
    low, high = 10000, 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first = int(f.read().split()[0])
        if first > low + 1000:
            high = first
    except (OSError, ValueError, IndexError):
        pass
    return low, high


_LOW, _HIGH = _range()
_NEXT = itertools.count(random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little")).randrange(_HIGH - _LOW))


def _free(port, kind):
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 a moment ago."""
    for _ in range(_HIGH - _LOW):
        port = _LOW + next(_NEXT) % (_HIGH - _LOW)
        if _free(port, socket.SOCK_STREAM) and _free(port, socket.SOCK_DGRAM):
            return port
    raise RuntimeError("no free loopback port in %d-%d" % (_LOW, _HIGH - 1))
