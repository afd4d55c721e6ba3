"""bench/ui: the dashboard's drawing speed in headless Chromium against a real photon-server.

  python3 bench/ui/ui_bench.py [BUILD_DIR] [--rounds N]

- floor view: 50 racks x 42 U holding 2,000 devices, front and rear (target <= 300 ms from the
  data to the painted frame; also from the click to the painted frame, which adds streaming and
  parsing the 2,000 objects over the watch);
- network diagram: the cabling of 1,000 devices with 2,000 links, laid out and drawn
  (target <= 1 s);
- watch-to-screen: instances created through the API one after another, from the request to
  their row in the live list (target p99 <= 1 s).
The figures are printed; docs/ui.md keeps the last ones."""
import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "ui"))
import cdp  # noqa: E402
from ui_common import Cluster, floor_objects  # noqa: E402


def create_all(cluster, objs):
    def one(item):
        plural, o = item
        cluster.must("POST", "/v1/" + plural, o)
    # parents first (floors need no datacenter to exist, but keep the order readable)
    head = [x for x in objs if x[0] != "physicalresources"]
    tail = [x for x in objs if x[0] == "physicalresources"]
    for x in head:
        one(x)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, tail))


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def timings(page, name):
    return page.eval("(window.photonUi ? window.photonUi.timings : []).filter("
                     "(t) => t.name === '%s').map((t) => t.ms)" % name)


def draw_rounds(page, hash_, name, ready, rounds):
    """Opens `hash_` `rounds` times from another page; returns (data->screen, click->screen)."""
    inner, outer = [], []
    for _ in range(rounds):
        page.eval("location.hash = '#/kinds'")
        page.wait("document.querySelector('.kinds')", 10, "the kinds page")
        before = len(timings(page, name))
        t0 = page.eval("performance.now()")
        page.eval("location.hash = '%s'" % hash_)
        page.wait("(window.photonUi ? window.photonUi.timings : []).filter((t) => t.name === "
                  "'%s').length > %d && (%s)" % (name, before, ready), 60, name)
        ms = timings(page, name)[before]
        done = page.eval("performance.now()")
        inner.append(ms)
        outer.append(done - t0)
    return inner, outer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--creates", type=int, default=200)
    args = ap.parse_args()
    cluster = Cluster(os.path.abspath(args.build), nodes=4, prefix="uibench")
    browser = None
    try:
        t = time.time()
        create_all(cluster, floor_objects("dc-b", "fl-b", racks=50, units=42, devices=2000,
                                          nodes=cluster.nodes, cluster="cl-b"))
        create_all(cluster, floor_objects("dc-n", "fl-n", racks=25, units=42, devices=1000,
                                          links=True))
        print("setup: 3,000 physical resources created in %.1f s" % (time.time() - t))
        browser = cdp.Browser(width=1600, height=1000)
        page = browser.new_page()
        page.navigate(cluster.base + "/ui/")
        page.wait("document.querySelector('#token')", 10, "log-in form")
        page.type_into("#token", cluster.token)
        page.click("#login-button")
        page.wait("document.querySelector('#principal')", 10, "logged in")

        inner, outer = draw_rounds(
            page, "#/floor/fl-b", "floor",
            "document.querySelector('#floor-diagram').getAttribute('data-devices') === '2000'",
            args.rounds)
        rects = page.eval("document.querySelector('#floor-canvas').photonRegions.length")
        print("floor view, 50 racks x 42 U, 2,000 devices (canvas, %d clickable regions, front "
              "and rear): "
              "data->screen median %.0f ms, max %.0f ms; click->screen median %.0f ms, max %.0f ms"
              % (rects, statistics.median(inner), max(inner), statistics.median(outer),
                 max(outer)))

        inner, outer = draw_rounds(
            page, "#/network/floor/fl-n", "floor-network",
            "document.querySelector('#net-diagram').getAttribute('data-nodes') === '1000'",
            args.rounds)
        links = page.eval("document.querySelector('#net-diagram').getAttribute('data-links')")
        layout_ms = page.eval(
            "import('/ui/js/network.js').then(async (n) => { const l = await "
            "import('/ui/js/netlayout.js'); const r = await fetch('/v1/namespaces/system/"
            "physicalresources', {headers: {Authorization: 'Bearer ' + sessionStorage.getItem("
            "'photon.token')}}); const items = (await r.json()).items.filter((p) => "
            "p.spec.rack.startsWith('fl-n-')); const g = n.cablingGraph(items); const t0 = "
            "performance.now(); l.layout(g.nodes, g.edges, g.roots); return performance.now() "
            "- t0; })")
        print("network diagram, 1,000 devices, %s links: layout alone %.0f ms; layout+draw "
              "data->screen median %.0f ms, max %.0f ms; click->screen median %.0f ms, max %.0f ms"
              % (links, layout_ms, statistics.median(inner), max(inner),
                 statistics.median(outer), max(outer)))

        page.eval("location.hash = '#/kinds/computeinstances'")
        page.wait("document.querySelector('#list-status').textContent.includes('live')", 10,
                  "the live list")
        page.eval("window.seen = {}; new MutationObserver(() => { for (const tr of "
                  "document.querySelectorAll('#list-body tr')) { const n = tr.dataset.name; "
                  "if (!(n in window.seen)) window.seen[n] = Date.now(); } }).observe("
                  "document.querySelector('#list-body'), {childList: true})")
        sent = {}
        for i in range(args.creates):
            name = "lat-%04d" % i
            sent[name] = time.time() * 1000
            cluster.must("POST", "/v1/namespaces/default/computeinstances", {
                "metadata": {"name": name},
                "spec": {"process": {"command": ["/bin/sleep", "600"]}}})
        page.wait("Object.keys(window.seen).filter((n) => n.startsWith('lat-')).length >= %d"
                  % args.creates, 60, "every row")
        seen = page.eval("window.seen")
        lat = [seen[n] - sent[n] for n in sent]
        print("watch->screen, %d creates: p50 %.0f ms, p99 %.0f ms, max %.0f ms"
              % (len(lat), pct(lat, 50), pct(lat, 99), max(lat)))
        print("load average: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        if browser:
            browser.close()
        cluster.close()


if __name__ == "__main__":
    main()
