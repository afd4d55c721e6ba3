// A VM's serial console in the page: the same session as `photon console` (docs/api.md
// "Streams"), opened with POST .../console, its output read as a fetch stream of frames, what
// is typed POSTed as input frames, both with the bearer token in the Authorization header.
// Flow control as in the CLI: output is acknowledged every quarter window on a call of its
// own, and input goes one POST at a time, each answered once the guest has read what came
// before (a paste the guest does not read waits here, not in the server).
import * as api from "./api.js";
import { h } from "./dom.js";

const MAX_LINES = 2000; // scrollback kept
const INPUT_CHUNK = 16 * 1024;

// A minimal terminal: text with \r, \n, backspace, tab, and the ANSI sequences a serial login
// and shell use (cursor moves, erase line or screen; colours are dropped).
export class Terminal {
  constructor(el) {
    this.el = el;
    this.lines = [""];
    this.row = 0;
    this.col = 0;
    this.esc = null; // the escape sequence being read
    this.decoder = new TextDecoder();
    this.pending = false;
  }

  write(bytes) {
    for (const c of this.decoder.decode(bytes, { stream: true })) this.put(c);
    this.schedule();
  }

  put(c) {
    if (this.esc !== null) {
      this.esc += c;
      // ESC [ params final: the final byte is 0x40..0x7e; a lone ESC x is two bytes.
      if (this.esc.length === 2 && c !== "[") this.esc = null;
      else if (this.esc.length > 2 && c >= "@" && c <= "~") {
        this.csi(this.esc.slice(2, -1), c);
        this.esc = null;
      } else if (this.esc.length > 32) this.esc = null;
      return;
    }
    switch (c) {
      case "\x1b": this.esc = c; return;
      case "\r": this.col = 0; return;
      case "\n": this.newline(); return;
      case "\b": this.col = Math.max(0, this.col - 1); return;
      case "\t": this.col = (Math.floor(this.col / 8) + 1) * 8; return;
      case "\x07": return;
    }
    if (c < " ") return; // other controls
    const line = this.lines[this.row].padEnd(this.col);
    this.lines[this.row] = line.slice(0, this.col) + c + line.slice(this.col + 1);
    this.col++;
  }

  newline() {
    this.row++;
    if (this.row === this.lines.length) this.lines.push("");
    if (this.lines.length > MAX_LINES) {
      const drop = this.lines.length - MAX_LINES;
      this.lines.splice(0, drop);
      this.row -= drop;
    }
  }

  csi(params, final) {
    const n = (i, d) => parseInt(params.split(";")[i], 10) || d;
    const line = this.lines[this.row];
    switch (final) {
      case "A": this.row = Math.max(0, this.row - n(0, 1)); break;
      case "B": this.row = Math.min(this.lines.length - 1, this.row + n(0, 1)); break;
      case "C": this.col += n(0, 1); break;
      case "D": this.col = Math.max(0, this.col - n(0, 1)); break;
      case "G": this.col = n(0, 1) - 1; break;
      case "K": // erase in line: 0 to the end, 1 to the cursor, 2 all
        if (n(0, 0) === 0) this.lines[this.row] = line.slice(0, this.col);
        else if (n(0, 0) === 1) this.lines[this.row] = " ".repeat(this.col) + line.slice(this.col);
        else this.lines[this.row] = "";
        break;
      case "J":
        if (n(0, 0) >= 2) {
          this.lines = [""];
          this.row = 0;
          this.col = 0;
        } else if (n(0, 0) === 0) {
          this.lines[this.row] = line.slice(0, this.col);
          this.lines.length = this.row + 1;
        }
        break;
      case "H":
      case "f": { // rows counted from the top of the last screenful (24 lines)
        const top = Math.max(0, this.lines.length - 24);
        this.row = top + n(0, 1) - 1;
        while (this.row >= this.lines.length) this.lines.push("");
        this.col = n(1, 1) - 1;
        break;
      }
      default: // m (colours) and the rest: nothing to draw
    }
  }

  // Drawn at once when the last drawing is a frame old (an echo shows without waiting for the
  // next frame), else on the next frame: a flood of output costs one redraw a frame.
  schedule() {
    if (this.pending) return;
    this.pending = true;
    const draw = () => {
      this.pending = false;
      this.drawn = performance.now();
      const atBottom = this.el.scrollTop + this.el.clientHeight >= this.el.scrollHeight - 4;
      this.el.textContent = this.lines.join("\n");
      if (atBottom) this.el.scrollTop = this.el.scrollHeight;
    };
    // The microtask runs once this chunk's frames are all written.
    if (performance.now() - (this.drawn || 0) >= 16) queueMicrotask(draw);
    else requestAnimationFrame(draw);
  }

  text() {
    return this.lines.join("\n");
  }
}

// What a key sends to a serial line (null: not for the guest).
function keyBytes(e) {
  if (e.metaKey) return null;
  const special = {
    Enter: "\r", Backspace: "\x7f", Tab: "\t", Escape: "\x1b", ArrowUp: "\x1b[A",
    ArrowDown: "\x1b[B", ArrowRight: "\x1b[C", ArrowLeft: "\x1b[D", Home: "\x1b[H",
    End: "\x1b[F", Delete: "\x1b[3~", PageUp: "\x1b[5~", PageDown: "\x1b[6~",
  };
  if (special[e.key]) return special[e.key];
  if (e.ctrlKey && !e.altKey && e.key.length === 1) {
    const code = e.key.toUpperCase().charCodeAt(0);
    if (code >= 0x40 && code <= 0x5f) return String.fromCharCode(code & 0x1f);
    return null;
  }
  if (e.key.length === 1 || [...e.key].length === 1) return (e.altKey ? "\x1b" : "") + e.key;
  return null;
}

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  }
  return btoa(s);
}

function fromBase64(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// Attaches to the console of VM ns/name inside `el`. `onEnd(message)` is called once when the
// session ends (detach: message ""). Returns {detach()}.
export function attachConsole(el, ns, name, onEnd) {
  const status = h("span", { id: "console-status", class: "muted" }, "attaching…");
  const screen = h("pre", { id: "console-screen", tabindex: "0", "aria-label": "console of " + ns + "/" + name });
  const detachBtn = h("button", { id: "console-detach" }, "Detach");
  el.replaceChildren(h("div", { class: "toolbar" }, h("b", {}, "Console"), status,
    h("span", { class: "muted" }, "(Ctrl-] detaches; the VM keeps running)"), detachBtn), screen);
  el.hidden = false;
  const term = new Terminal(screen);
  const abort = new AbortController();
  const enc = new TextEncoder();
  let session = null;
  let ended = false;
  let queue = [];
  let sending = false;

  function end(message) {
    if (ended) return;
    ended = true;
    abort.abort(); // closes the output stream: the server ends the session, the VM runs on
    status.textContent = message || "detached (the VM keeps running)";
    status.className = message ? "error" : "muted";
    screen.dataset.ended = "true";
    detachBtn.disabled = true;
    onEnd(message);
  }

  async function post(body) {
    const r = await fetch(session.input, {
      method: "POST",
      headers: { Authorization: "Bearer " + api.token(), "Content-Type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
      signal: abort.signal,
    });
    const text = await r.text();
    let j = {};
    try {
      j = JSON.parse(text);
    } catch (e) {
      // not JSON: the status says enough
    }
    if (!r.ok) throw new api.ApiError(r.status, (j.error && j.error.message) || text || r.statusText);
    return j;
  }

  // One input POST at a time; what is typed meanwhile goes in the next.
  async function pump() {
    if (sending || !session) return;
    sending = true;
    try {
      while (queue.length && !ended) {
        const all = new Uint8Array(queue.reduce((n, b) => n + b.length, 0));
        let off = 0;
        for (const b of queue) {
          all.set(b, off);
          off += b.length;
        }
        const chunk = all.subarray(0, INPUT_CHUNK);
        queue = all.length > INPUT_CHUNK ? [all.slice(INPUT_CHUNK)] : [];
        let r = await post({ frames: [{ t: "in", d: toBase64(chunk) }] });
        while (r.paused && !ended) r = await post({ frames: [] }); // the guest reads slowly
      }
    } catch (e) {
      if (!ended) end("input: " + e.message);
    }
    sending = false;
  }

  function send(text) {
    if (ended) return;
    queue.push(enc.encode(text));
    pump();
  }

  screen.addEventListener("keydown", (e) => {
    if (e.ctrlKey && e.key === "]") {
      e.preventDefault();
      end("");
      return;
    }
    const bytes = keyBytes(e);
    if (bytes === null) return;
    e.preventDefault();
    send(bytes);
  });
  screen.addEventListener("paste", (e) => {
    e.preventDefault();
    send((e.clipboardData.getData("text") || "").replace(/\r?\n/g, "\r"));
  });
  detachBtn.addEventListener("click", () => end(""));

  (async () => {
    try {
      session = await api.call("POST", api.objectPath("computeinstances", ns, name) + "/console", {});
    } catch (e) {
      end(e.message);
      return;
    }
    if (ended) return;
    const window = Math.max(4, session.window || 1 << 20);
    status.textContent = "attached";
    status.className = "ok";
    screen.dataset.session = session.session;
    screen.focus();
    pump();
    let unacked = 0;
    try {
      const r = await fetch(session.output, {
        headers: { Authorization: "Bearer " + api.token() },
        cache: "no-store",
        signal: abort.signal,
      });
      if (!r.ok) throw new Error(await r.text());
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line.trim()) continue;
          const f = JSON.parse(line);
          if (f.t === "out" || f.t === "err") {
            const data = fromBase64(f.d || "");
            term.write(data);
            unacked += data.length;
            if (unacked >= window / 4) {
              // Its own call, never behind a waiting input POST: the guest's output must
              // flow while its input waits (it may be echoing what it reads).
              post({ frames: [{ t: "ack", n: unacked }] }).catch(() => {});
              unacked = 0;
            }
          } else if (f.t === "error") {
            end(f.message || "the console failed");
          } else if (f.t === "exit") {
            end("the console ended");
          }
        }
      }
      end("the console closed");
    } catch (e) {
      if (!ended) end(e.message || String(e));
    }
  })();

  return { detach: () => end(""), terminal: term, focus: () => screen.focus() };
}
