"""Headless Chromium driven over the DevTools protocol (websocket), for the dashboard's tests
and bench/ui. No test framework in between: a page, Runtime.evaluate, input events and
screenshots. Waiting is done in the page (a predicate polled each frame up to a deadline)."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket  # Debian: python3-websocket


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(Exception):
    pass


class Browser:
    """One Chromium process with its own profile directory, removed on close()."""

    def __init__(self, width=1600, height=1000):
        self.profile = tempfile.mkdtemp(prefix="photon-ui-chromium-")
        args = [find_chromium(), "--headless=new", "--remote-debugging-port=0",
                "--user-data-dir=" + self.profile, "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                "--window-size=%d,%d" % (width, height), "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to start its sandbox as root
        self.log = open(os.path.join(self.profile, "chromium.log"), "w")
        # Chromium makes its singleton socket directory (org.chromium.Chromium.*) under TMPDIR:
        # inside the profile it goes with it, instead of staying in /tmp after every run.
        tmp = os.path.join(self.profile, "tmp")
        os.mkdir(tmp, 0o700)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, TMPDIR=tmp))
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if self.proc.poll() is not None or time.time() > deadline:
                self.close()
                raise CdpError("chromium did not start: see " + self.log.name)
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.readline())

    def new_page(self):
        req = urllib.request.Request("http://127.0.0.1:%d/json/new?about:blank" % self.port,
                                     method="PUT")
        with urllib.request.urlopen(req, timeout=10) as r:
            target = json.loads(r.read())
        return Page(target["webSocketDebuggerUrl"])

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # Chromium's helpers may still write a file or two after the main process has gone.
        deadline = time.time() + 5
        while True:
            shutil.rmtree(self.profile, ignore_errors=True)
            if not os.path.exists(self.profile) or time.time() > deadline:
                break
            time.sleep(0.05)


class Page:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Network.enable")
        self.send("Page.bringToFront")  # a background tab's frames (and redraws) are throttled

    def send(self, method, **params):
        self.next_id += 1
        mine = self.next_id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mine:
                if "error" in msg:
                    raise CdpError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            self.events.append(msg)

    def eval(self, expression):
        r = self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                      returnByValue=True)
        if "exceptionDetails" in r:
            raise CdpError("%s: %s" % (expression[:80], r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, predicate, timeout, what):
        """Polls the JS expression `predicate` in the page each 20 ms until it is truthy (its
        value is returned) or `timeout` seconds pass (AssertionError naming `what`)."""
        value = self.eval(
            "new Promise((res) => { const end = performance.now() + %d; (function tick() {"
            " let v = null; try { v = (%s); } catch (e) { v = null; }"
            " if (v) return res(v instanceof Node ? true : v);"
            " if (performance.now() > end) return res(null);"
            " setTimeout(tick, 20); })(); })" % (int(timeout * 1000), predicate))
        if not value:
            raise AssertionError("timed out after %ss waiting for %s (page %s)"
                                 % (timeout, what, self.eval("location.href")))
        return value

    def navigate(self, url):
        self.send("Page.navigate", url=url)
        self.wait("document.readyState === 'complete'", 30, "load of " + url)

    def type_into(self, selector, text):
        self.eval("document.querySelector(%s).focus()" % json.dumps(selector))
        self.send("Input.insertText", text=text)

    def type_keys(self, text):
        """Key presses into the focused element, one keydown/keyup per character ("\\r":
        Enter), as a user types (unlike type_into, which inserts text without key events)."""
        for ch in text:
            if ch == "\r":
                down = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13,
                        "text": "\r"}
            else:
                down = {"key": ch, "text": ch}
            self.send("Input.dispatchKeyEvent", type="keyDown", **down)
            self.send("Input.dispatchKeyEvent", type="keyUp", key=down["key"])

    def click(self, selector):
        """A real mouse click at the element's centre (it must be visible)."""
        box = self.eval(
            "(() => { const e = document.querySelector(%s); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()" % json.dumps(selector))
        if not box:
            raise AssertionError("no element " + selector)
        self.click_at(box[0], box[1])

    def click_at(self, x, y):
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))

    def requested_urls(self):
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def close(self):
        try:
            self.send("Page.close")
        except Exception:  # noqa: BLE001  the tab may be gone with its browser already
            pass
        self.ws.close()
