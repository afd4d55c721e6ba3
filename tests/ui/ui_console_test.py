"""A VM's serial console in the dashboard, in headless Chromium (docs/ui.md "Console"): a real
photon-server and photon-agent running a tiny TCG guest (scripts/make-vm-image.sh) whose user
script answers every line of its serial port. The VM is created from the UI and reaches RUNNING
without a reload; its page opens the console, a line typed there (real key events) reaches the
guest, whose answer is shown; a second console is refused with the agent's message; Detach ends
the session and the VM runs on (same QEMU); closing the tab detaches too; a viewer sees no
Console button and the API refuses the viewer anyway. Screenshots: BUILD/tests/ui/artifacts/."""
import json
import os
import select
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402
from ui_common import Cluster, echo_vm, kill_leftover_vms, start_vm_node  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(BUILD, "tests", "ui", "artifacts")

VM = "ui-vm"


def wait_until(what, fn, timeout):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


class ConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not cdp.find_chromium():
            raise unittest.SkipTest("chromium not installed (scripts/install-deps.sh)")
        if os.geteuid() != 0:
            raise unittest.SkipTest("the agent needs root for its VMs")
        os.makedirs(ARTIFACTS, exist_ok=True)
        cls.cluster = Cluster(BUILD, nodes=0, prefix="uic")
        cls.browser = None
        try:
            cls._start()
            cls.browser = cdp.Browser()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls):
        cls.node = "uic%d" % (os.getpid() % 100000)
        cls.agent_dir = start_vm_node(cls.cluster, ROOT, cls.node)

    @classmethod
    def tearDownClass(cls):
        if cls.browser:
            cls.browser.close()
        cls.cluster.close()  # stops the agent, removes the directory
        kill_leftover_vms(cls.cluster)

    def shot(self, page, name):
        page.screenshot(os.path.join(ARTIFACTS, name + ".png"))

    def login(self, page, token):
        page.navigate(self.cluster.base + "/ui/")
        page.wait("document.querySelector('#token')", 10, "the log-in form")
        page.type_into("#token", token)
        page.click("#login-button")
        page.wait("document.querySelector('#principal')", 10, "the logged-in header")
        page.eval("window.notReloaded = true")

    def agent_log(self):
        with open(os.path.join(self.cluster.dir, "agent.log"), errors="replace") as f:
            return f.read()[-4000:]

    def instance(self):
        return self.cluster.call("GET", "/v1/namespaces/default/computeinstances/" + VM)[1]

    def qemu_pid(self):
        path = os.path.join(self.agent_dir, "providers/vm/instances",
                            self.instance()["metadata"]["id"], "state.json")
        with open(path) as f:
            return json.load(f).get("pid", 0)

    def console_log(self):
        path = os.path.join(self.agent_dir, "providers/vm/instances",
                            self.instance()["metadata"]["id"], "console.log")
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def cli_console_round_trip(self, word):
        """`photon console` types `word` (again until the agent has the socket and the
        console is free) and sees the guest's answer, then detaches with Ctrl-]."""
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.cluster.dir,
               "PHOTON_SERVER": self.cluster.base, "PHOTON_TOKEN": self.cluster.token}
        p = subprocess.Popen([os.path.join(BUILD, "src/cli/photon"), "console", VM], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        fd = p.stdout.fileno()
        os.set_blocking(fd, False)
        out = b""
        try:
            end = time.time() + 30
            while ("guest-heard:" + word).encode() not in out:
                if p.poll() is not None:
                    raise AssertionError("photon console ended: %s" % p.stderr.read())
                self.assertLess(time.time(), end, "no answer to photon console: %r" % out)
                p.stdin.write(word.encode() + b"\r")
                p.stdin.flush()
                if select.select([fd], [], [], 1)[0]:
                    out += os.read(fd, 65536)
            p.stdin.write(b"\x1d")  # Ctrl-]
            p.stdin.flush()
            self.assertEqual(p.wait(timeout=20), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdin.close()
            p.stdout.close()
            p.stderr.close()

    def open_console(self, page):
        page.wait("(() => { const b = document.querySelector('#action-console');"
                  " return b && !b.hidden && !b.disabled; })()", 10, "the Console button")
        page.click("#action-console")
        page.wait("document.querySelector('#console-screen')", 10, "the console view")

    def test_console_in_the_browser(self):
        c = self.cluster
        page = self.browser.new_page()
        try:
            self.login(page, c.token)
            # Created from the UI (pasted JSON), RUNNING seen live on its page.
            vm = echo_vm(VM, self.node)
            page.eval("location.hash = '#/create'")
            page.wait("document.querySelector('#create-text')", 10, "the create page")
            page.type_into("#create-text", json.dumps(vm))
            page.click("#create-submit")
            page.wait("location.hash === '#/kinds/computeinstances/default/%s'" % VM, 10,
                      "the VM's page after the create")
            try:
                page.wait("(document.querySelector('#field-phase') || {}).textContent"
                          " === 'RUNNING'", 240, "phase RUNNING on the VM's page")
            except AssertionError:
                raise AssertionError("VM not RUNNING: %s\n%s" % (self.instance(),
                                                                  self.agent_log()))
            self.assertTrue(page.eval("window.notReloaded === true"), "the page reloaded")
            wait_until("the guest's script", lambda: "guest-listening" in self.console_log(), 60)
            qemu = self.qemu_pid()
            self.assertGreater(qemu, 0)

            self.open_console(page)
            page.wait("document.querySelector('#console-status').textContent === 'attached'",
                      10, "the console attached")
            word = "browser-%d" % os.getpid()
            # Real key events into the focused terminal; typed again until the agent has the
            # serial socket and the guest's answer (not the tty's echo of the line) shows.
            page.eval("document.querySelector('#console-screen').focus()")
            end = time.time() + 30
            heard = "guest-heard:" + word
            while True:
                page.type_keys(word + "\r")
                try:
                    page.wait("document.querySelector('#console-screen').textContent"
                              ".includes(%s)" % json.dumps(heard), 2, "the guest's answer")
                    break
                except AssertionError:
                    if time.time() > end:
                        raise AssertionError("no answer in the console: %r\n%s" % (
                            page.eval("document.querySelector('#console-screen').textContent"),
                            self.agent_log()))
            self.shot(page, "vm-console")

            # A second console (another browser: in this one, the first tab's watches and
            # console hold most of the six connections a browser opens to one origin) is
            # refused with the agent's message.
            other = cdp.Browser()
            second = other.new_page()
            try:
                self.login(second, c.token)
                second.eval("location.hash = '#/kinds/computeinstances/default/%s'" % VM)
                self.open_console(second)
                msg = second.wait("(() => { const s = document.querySelector('#console-status');"
                                  " return s.className === 'error' && s.textContent; })()", 20,
                                  "the second console's refusal")
                self.assertIn("attached elsewhere", msg)
                self.shot(second, "vm-console-second-refused")
            finally:
                second.close()
                other.close()

            # Detach: the session ends, the VM runs on (the same QEMU), the button is back.
            page.click("#console-detach")
            page.wait("document.querySelector('#console-status').textContent.startsWith("
                      "'detached')", 10, "the detach")
            page.wait("!document.querySelector('#action-console').disabled", 10,
                      "the Console button back")
            self.assertEqual(self.instance()["status"]["phase"], "RUNNING")
            self.assertEqual(self.qemu_pid(), qemu)
            os.kill(qemu, 0)
            self.assertIn(heard, self.console_log())
            # The console is free again (the detach released it), and closing the tab ends
            # that session too: a third console after it attaches.
            self.open_console(page)
            page.wait("document.querySelector('#console-status').textContent === 'attached'",
                      10, "the console attached again")
            page.type_keys("again\r")
            page.wait("document.querySelector('#console-screen').textContent"
                      ".includes('guest-heard:again')", 30, "the answer after re-attaching")
        finally:
            page.close()
        page = self.browser.new_page()
        try:
            self.login(page, c.token)
            page.eval("location.hash = '#/kinds/computeinstances/default/%s'" % VM)
            self.open_console(page)
            page.wait("document.querySelector('#console-status').textContent === 'attached'",
                      10, "a console after the tab closed")
            page.type_keys("third\r")
            page.wait("document.querySelector('#console-screen').textContent"
                      ".includes('guest-heard:third')", 30, "the answer after the tab closed")
            # Leaving the page detaches as well: with the tab still open on another page,
            # `photon console` attaches and is answered.
            page.eval("location.hash = '#/kinds/computeinstances'")
            page.wait("document.querySelector('#list')", 10, "the list")
            self.cli_console_round_trip("fourth")
        finally:
            page.close()
        self.assertEqual(self.instance()["status"]["phase"], "RUNNING")
        self.assertEqual(self.qemu_pid(), qemu)

        # A viewer sees no Console button, and the API refuses the viewer anyway.
        viewer = c.must("POST", "/v1/tokens", {
            "principal": "console-viewer", "bindings": [{"namespace": "default",
                                                         "role": "viewer"}],
            "ttlSeconds": 3600})["token"]
        page = self.browser.new_page()
        try:
            self.login(page, viewer)
            page.eval("location.hash = '#/kinds/computeinstances/default/%s'" % VM)
            page.wait("(document.querySelector('#field-phase') || {}).textContent === 'RUNNING'",
                      10, "the viewer's VM page")
            page.wait("document.querySelector('#actions').dataset.ready === 'true'", 10,
                      "the permission checks")
            self.assertIsNone(page.eval("document.querySelector('#action-console')"))
            self.shot(page, "vm-viewer-no-console")
        finally:
            page.close()
        code, out = c.call("POST", "/v1/namespaces/default/computeinstances/%s/console" % VM,
                           {}, token=viewer)
        self.assertEqual(code, 403, out)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
