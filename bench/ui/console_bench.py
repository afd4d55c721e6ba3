"""bench/ui: a VM's console in the browser next to `photon console`, same VM, same run.

  python3 bench/ui/console_bench.py [BUILD_DIR] [--rounds N]      (root: runs a VM)

A line typed into the console, then Enter -> the guest's answer on the screen, through
photon-server's relay and the node's agent to the guest's serial line and back (the guest's
script answers each line with "guest-heard:LINE"). The line is typed first and Enter is timed
once the guest's tty has echoed it:
- browser: from the Enter keydown in the page to the answer in the terminal's text (headless
  Chromium, key events over the DevTools protocol; includes up to one animation frame, as the
  terminal redraws once a frame);
- peer, the CLI: from the write of Enter to `photon console`'s stdin to the answer on its
  stdout.
The figures are printed with their ratio; docs/ui.md keeps the last ones."""
import argparse
import fcntl
import os
import select
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "ui"))
import cdp  # noqa: E402
from ui_common import Cluster, echo_vm, kill_leftover_vms, start_vm_node  # noqa: E402

VM = "bench-vm"


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def summary(values):
    return "p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (pct(values, 50), pct(values, 99),
                                                      max(values))


def wait_until(what, fn, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def browser_rounds(cluster, rounds):
    browser = cdp.Browser()
    try:
        page = browser.new_page()
        page.navigate(cluster.base + "/ui/")
        page.wait("document.querySelector('#token')", 10, "the log-in form")
        page.type_into("#token", cluster.token)
        page.click("#login-button")
        page.wait("document.querySelector('#principal')", 10, "the log-in")
        page.eval("location.hash = '#/kinds/computeinstances/default/%s'" % VM)
        page.wait("(() => { const b = document.querySelector('#action-console');"
                  " return b && !b.hidden; })()", 10, "the console button")
        page.click("#action-console")
        page.wait("document.querySelector('#console-status').textContent === 'attached'", 10,
                  "the console")
        page.eval("""(() => {
          const screen = document.querySelector('#console-screen');
          window.lat = [];
          let pending = null;
          document.addEventListener('keydown', (e) => {
            if (e.key === 'Enter' && window.want) pending = {t0: performance.now(), want: window.want};
          }, true);
          new MutationObserver(() => {
            if (pending && screen.textContent.includes(pending.want)) {
              window.lat.push(performance.now() - pending.t0);
              pending = null;
            }
          }).observe(screen, {childList: true, characterData: true, subtree: true});
        })()""")
        page.eval("document.querySelector('#console-screen').focus()")
        # The first line waits for the agent to connect the serial socket: not measured.
        page.eval("window.want = 'guest-heard:warm'")
        page.type_keys("warm\r")
        page.wait("window.lat.length === 1", 30, "the first answer")
        for i in range(rounds):
            word = "b%d-%d" % (os.getpid(), i)
            page.type_keys(word)
            # The guest's tty echoes what is typed: the line is there before Enter is timed.
            page.wait("document.querySelector('#console-screen').textContent.includes('%s')"
                      % word, 10, "the echo of %s" % word)
            page.eval("window.want = 'guest-heard:%s'" % word)
            page.type_keys("\r")
            page.wait("window.lat.length === %d" % (i + 2), 10, "answer %d" % i)
        lat = page.eval("window.lat.slice(1)")
        page.click("#console-detach")
        page.wait("document.querySelector('#console-status').textContent.startsWith('detached')",
                  10, "the detach")
        page.close()
        return lat
    finally:
        browser.close()


def cli_rounds(cluster, build, rounds):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": cluster.dir,
           "PHOTON_SERVER": cluster.base, "PHOTON_TOKEN": cluster.token}
    p = subprocess.Popen([os.path.join(build, "src/cli/photon"), "console", VM], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fd = p.stdout.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    out = b""

    def until(needle, timeout):
        nonlocal out
        end = time.time() + timeout
        while needle not in out:
            left = end - time.time()
            if left <= 0:
                raise AssertionError("no %r from photon console: %r" % (needle, out[-500:]))
            if select.select([fd], [], [], left)[0]:
                out += os.read(fd, 65536)

    try:
        # Retyped until the agent has connected the serial socket: not measured.
        end = time.time() + 30
        while True:
            p.stdin.write(b"warm\r")
            p.stdin.flush()
            try:
                until(b"guest-heard:warm", 1)
                break
            except AssertionError:
                if time.time() > end:
                    raise
        lat = []
        for i in range(rounds):
            word = ("c%d-%d" % (os.getpid(), i)).encode()
            p.stdin.write(word)  # as typed, then Enter once the tty has echoed it (as above)
            p.stdin.flush()
            until(word, 10)  # unique: its echo (the answer comes after Enter)
            t0 = time.perf_counter()
            p.stdin.write(b"\r")
            p.stdin.flush()
            until(b"guest-heard:" + word, 10)
            lat.append((time.perf_counter() - t0) * 1000)
        return lat
    finally:
        p.stdin.write(b"\x1d")  # Ctrl-]: detach
        p.stdin.close()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    cluster = Cluster(build, nodes=0, prefix="cb")
    try:
        node = "cb%d" % (os.getpid() % 100000)
        start_vm_node(cluster, ROOT, node)
        cluster.must("POST", "/v1/namespaces/default/computeinstances", echo_vm(VM, node))

        def running():
            obj = cluster.call("GET", "/v1/namespaces/default/computeinstances/" + VM)[1]
            return obj.get("status", {}).get("phase") == "RUNNING"
        t = time.time()
        wait_until("the VM RUNNING", running, 240)
        print("setup: VM RUNNING in %.1f s" % (time.time() - t))
        # Two passes each, alternating, so a change of load hits both alike.
        web, cli = [], []
        for _ in range(2):
            web += browser_rounds(cluster, args.rounds // 2)
            cli += cli_rounds(cluster, build, args.rounds // 2)
        print("console line -> guest's answer on screen, %d lines each:" % len(web))
        print("  browser (keydown -> terminal text): %s" % summary(web))
        print("  photon console (stdin -> stdout):   %s" % summary(cli))
        print("  ratio browser/CLI: p50 %.2f, p99 %.2f" % (pct(web, 50) / pct(cli, 50),
                                                         pct(web, 99) / pct(cli, 99)))
        print("load average: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        cluster.close()
        kill_leftover_vms(cluster)


if __name__ == "__main__":
    main()
