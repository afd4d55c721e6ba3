// The API client of the dashboard: every call carries the bearer token in its Authorization
// header (never in a URL), watches are streamed with fetch (newline-delimited JSON, no polling)
// and permission questions go to /v1/auth/can-i, answered once per session.

const TOKEN_KEY = "photon.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
  canCache.clear();
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function call(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : {};
  } catch (e) {
    // plain text answers (logs) stay text
  }
  if (!r.ok) {
    const msg = data && data.error ? data.error.message : String(text || r.statusText);
    throw new ApiError(r.status, msg);
  }
  return data;
}

// Kinds stored in the "system" namespace and addressed without one.
export const CLUSTER_SCOPED = new Set(["nodes", "datacenters", "floors", "racks", "physicalresources"]);

export function collectionPath(plural, ns) {
  if (CLUSTER_SCOPED.has(plural)) return "/v1/namespaces/system/" + plural;
  if (!ns) return "/v1/" + plural;
  return "/v1/namespaces/" + encodeURIComponent(ns) + "/" + plural;
}

export function objectPath(plural, ns, name) {
  const n = CLUSTER_SCOPED.has(plural) ? "system" : ns;
  return "/v1/namespaces/" + encodeURIComponent(n) + "/" + plural + "/" + encodeURIComponent(name);
}

const canCache = new Map();

// Whether the caller may `verb` (get, list, create, update, delete, action) `plural` in `ns`.
// The server refuses anyway; this only hides what would be refused.
export function can(verb, plural, ns) {
  const n = CLUSTER_SCOPED.has(plural) ? "system" : ns || "*";
  const key = verb + " " + plural + " " + n;
  if (!canCache.has(key)) {
    const q = new URLSearchParams({ verb, kind: plural, namespace: n });
    canCache.set(
      key,
      call("GET", "/v1/auth/can-i?" + q).then(
        (r) => !!r.allowed,
        () => false,
      ),
    );
  }
  return canCache.get(key);
}

// A live copy of one collection, kept by a watch stream. Subscribers get the Map of objects
// (key "ns/name") after every batch of changes; one frame coalesces many changes.
class Informer {
  constructor(plural, ns) {
    this.plural = plural;
    this.ns = ns;
    this.objects = new Map();
    this.listeners = new Set();
    this.refs = 0;
    this.rv = "";
    this.error = null;
    this.synced = false;
    this.abort = null;
    this.pending = false;
  }

  start() {
    this.stopped = false;
    this.run();
  }

  stop() {
    this.stopped = true;
    if (this.abort) this.abort.abort();
  }

  notify() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      for (const fn of this.listeners) fn(this.objects, this);
    });
  }

  async run() {
    while (!this.stopped) {
      this.abort = new AbortController();
      let failed = false;
      try {
        await this.stream();
      } catch (e) {
        if (this.stopped) return;
        failed = true;
        this.error = e.message || String(e);
        this.notify();
        if (e instanceof ApiError && (e.status === 401 || e.status === 403 || e.status === 404)) {
          return; // not allowed: the view shows why, retrying would not help
        }
      }
      if (this.stopped) return;
      // A stream that ended cleanly (an idle proxy, 410) is resumed at once; a failure waits.
      if (failed) await new Promise((res) => setTimeout(res, 1000));
    }
  }

  // List first (one complete picture to draw), then watch from the list's resourceVersion.
  async list() {
    const objects = new Map();
    let cont = "";
    let rv = "";
    do {
      const q = new URLSearchParams({ limit: "5000" });
      if (cont) q.set("continue", cont);
      const page = await call("GET", collectionPath(this.plural, this.ns) + "?" + q);
      for (const o of page.items || []) objects.set(o.metadata.namespace + "/" + o.metadata.name, o);
      cont = page.continue || "";
      if (!rv) rv = page.resourceVersion;
    } while (cont);
    this.objects = objects;
    this.rv = rv;
    this.synced = true;
    this.error = null;
    this.notify();
  }

  async stream() {
    if (!this.rv) await this.list();
    const q = new URLSearchParams({ watch: "true", resourceVersion: this.rv });
    const r = await fetch(collectionPath(this.plural, this.ns) + "?" + q, {
      headers: { Authorization: "Bearer " + token() },
      cache: "no-store",
      signal: this.abort.signal,
    });
    if (r.status === 410) {
      this.rv = ""; // history too old: list again
      return;
    }
    if (!r.ok) {
      const text = await r.text();
      let msg = text;
      try {
        msg = JSON.parse(text).error.message;
      } catch (e) {
        // keep text
      }
      throw new ApiError(r.status, msg);
    }
    this.error = null;
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let nl;
      let changed = false;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) changed = this.apply(JSON.parse(line)) || changed;
      }
      if (changed) this.notify();
    }
  }

  apply(ev) {
    if (ev.type === "ERROR") throw new ApiError(401, ev.error ? ev.error.message : "watch ended");
    const md = (ev.object && ev.object.metadata) || {};
    if (md.resourceVersion) this.rv = md.resourceVersion;
    if (ev.type === "BOOKMARK") return false;
    const key = md.namespace + "/" + md.name;
    if (ev.type === "DELETED") this.objects.delete(key);
    else this.objects.set(key, ev.object);
    return true;
  }
}

const informers = new Map();

// Subscribes `fn` to the live objects of `plural` (in `ns`; "" = every namespace the caller
// may list). Returns the function that unsubscribes; the stream closes with its last subscriber.
export function watch(plural, ns, fn) {
  const key = plural + " " + (CLUSTER_SCOPED.has(plural) ? "system" : ns || "");
  let inf = informers.get(key);
  if (!inf) {
    inf = new Informer(plural, ns);
    informers.set(key, inf);
    inf.start();
  }
  inf.listeners.add(fn);
  if (inf.synced || inf.error) fn(inf.objects, inf);
  return () => {
    inf.listeners.delete(fn);
    if (inf.listeners.size === 0) {
      inf.stop();
      informers.delete(key);
    }
  };
}

export function closeAllWatches() {
  for (const inf of informers.values()) inf.stop();
  informers.clear();
}
