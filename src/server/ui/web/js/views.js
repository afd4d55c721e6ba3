// Lists, detail pages and the create page of every kind, live through watches.
import * as api from "./api.js";
import { h, link, phaseOf, age } from "./dom.js";
import { parseDocuments, toYaml } from "./yaml.js";
import { state } from "./main.js";
import { attachConsole } from "./console.js";

export const KINDS = [
  "computeinstances", "flavors", "images", "regionservices", "vpcs", "subnets", "ports",
  "securitygroups", "floatingips", "loadbalancers", "dnszones", "dnsrecords", "volumes",
  "buckets", "nodes", "events", "operations", "checks", "eventrules", "alerts", "maintenances",
  "datacenters", "floors", "racks", "physicalresources",
];

// Instance actions the API offers (docs/api.md Actions).
const ACTIONS = { computeinstances: ["start", "stop", "reboot", "logs"] };

export function nsOf(plural) {
  if (api.CLUSTER_SCOPED.has(plural)) return "system";
  return state.ns === "*" ? "" : state.ns;
}

function detailHref(plural, obj) {
  return "#/kinds/" + plural + "/" + obj.metadata.namespace + "/" + obj.metadata.name;
}

function summaryCells(plural, obj) {
  const s = obj.spec || {};
  if (plural === "physicalresources") return [s.type, s.model, s.rack + " U" + s.positionU, s.node || ""];
  if (plural === "racks") return [s.floor, s.heightU + " U", "", ""];
  if (plural === "floors") return [s.datacenter, "", "", ""];
  if (plural === "nodes") return [s.address || "", (s.drivers || []).join(","), "", ""];
  if (plural === "events" || plural === "alerts") {
    const lab = obj.metadata.labels || {};
    return [lab["photon.io/severity"] || "", (s.summary || (s.opsEvent && s.opsEvent.output) || s.eventType || "").slice(0, 80), "", ""];
  }
  return [obj.metadata.agentId || "", (obj.status && obj.status.message) || "", "", ""];
}

export function listView(el, { plural }) {
  const ns = nsOf(plural);
  const tbody = h("tbody", { id: "list-body" });
  const status = h("p", { class: "muted", id: "list-status" }, "Loading…");
  const toolbar = h("div", { class: "toolbar" });
  el.replaceChildren(h("h1", {}, plural, ns ? h("span", { class: "muted" }, " in " + ns) : " (all namespaces)"), toolbar, status,
    h("table", { id: "list" }, h("thead", {}, h("tr", {}, ["Name", "Namespace", "Phase", "", "", "", "", "Age", ""].map((t) => h("th", {}, t)))), tbody));
  let canDelete = false;
  const table = el.querySelector("#list");
  Promise.all([api.can("create", plural, ns), api.can("delete", plural, ns)]).then(([create, del]) => {
    if (create) toolbar.append(link("#/create", "Create " + plural, { id: "create-link" }));
    canDelete = del;
    redraw();
    table.dataset.ready = "true"; // the buttons now show what the caller may do
  });
  let last = new Map();
  let info = null;
  function redraw() {
    if (info && info.error) status.textContent = "Error: " + info.error;
    else status.textContent = last.size + " objects, live";
    const rows = [...last.values()].sort((a, b) => (a.metadata.namespace + a.metadata.name).localeCompare(b.metadata.namespace + b.metadata.name));
    tbody.replaceChildren(...rows.map((o) => row(o)));
  }
  function row(o) {
    const md = o.metadata;
    const phase = phaseOf(o);
    const del = canDelete
      ? h("button", { class: "danger delete", onclick: () => remove(plural, md.namespace, md.name, status) }, "Delete")
      : "";
    return h("tr", { id: "row-" + md.namespace + "-" + md.name, "data-name": md.name },
      h("td", {}, link(detailHref(plural, o), md.name)), h("td", {}, md.namespace),
      h("td", { class: "phase phase-" + phase }, phase),
      summaryCells(plural, o).map((c) => h("td", {}, c ?? "")),
      h("td", {}, age(md.createdAt)), h("td", {}, del));
  }
  return api.watch(plural, ns, (objs, inf) => {
    last = objs;
    info = inf;
    redraw();
  });
}

async function remove(plural, ns, name, statusEl) {
  if (!confirm("Delete " + plural + " " + ns + "/" + name + "?")) return;
  try {
    await api.call("DELETE", api.objectPath(plural, ns, name));
    statusEl.textContent = "Delete of " + name + " requested";
  } catch (e) {
    statusEl.textContent = "Delete refused: " + e.message;
    statusEl.className = "error";
  }
}

function relatedTo(obj, name, plural) {
  const s = obj.spec || {};
  const lab = Object.assign({}, (obj.metadata && obj.metadata.labels) || {}, s.labels || {});
  if (lab.instance === name || lab.node === name || lab.name === name) return true;
  if (s.resourceEvent && s.resourceEvent.name === name) return true;
  if (s.opsEvent && (s.opsEvent.node === name || (s.opsEvent.labels || {}).instance === name)) return true;
  return plural === "nodes" && s.agentEvent && s.agentEvent.agentId === name;
}

export function detailView(el, { plural, ns, name }) {
  const head = h("div", { class: "grid2", id: "summary" });
  const actions = h("div", { class: "toolbar", id: "actions" });
  const out = h("pre", { id: "action-output", hidden: true });
  const msg = h("p", { id: "detail-status", class: "muted" });
  const yaml = h("pre", { id: "yaml" });
  const events = h("tbody", { id: "events" });
  const alerts = h("tbody", { id: "alerts" });
  const consoleEl = h("section", { id: "console", hidden: true });
  // A VM's serial console, for those who may run actions (the API refuses others anyway).
  let consoleBtn = null;
  let isVm = false;
  let term = null;
  const showConsoleBtn = () => {
    if (consoleBtn) consoleBtn.hidden = !isVm;
  };
  function openConsole() {
    if (term) {
      term.focus();
      return;
    }
    consoleBtn.disabled = true;
    term = attachConsole(consoleEl, ns, name, () => {
      term = null;
      consoleBtn.disabled = false;
    });
  }
  el.replaceChildren(h("h1", {}, plural + " / " + ns + " / " + name), msg, head, actions, out, consoleEl,
    h("h2", {}, "Events"), h("table", {}, events), h("h2", {}, "Alerts"), h("table", {}, alerts),
    h("h2", {}, "Object"), yaml);
  (async () => {
    if (await api.can("action", plural, ns)) {
      for (const a of ACTIONS[plural] || []) {
        actions.append(h("button", { class: "action", id: "action-" + a, onclick: () => act(plural, ns, name, a, out, msg) }, a));
      }
      if (plural === "computeinstances") {
        consoleBtn = h("button", { class: "action", id: "action-console", hidden: true, onclick: openConsole }, "console");
        actions.append(consoleBtn);
        showConsoleBtn();
      }
    }
    if (plural === "physicalresources") {
      actions.append(link("#/machine/" + name, "Machine view"), link("#/network/device/" + name, "Network"));
    }
    if (plural === "vpcs") actions.append(link("#/network/vpc/" + ns + "/" + name, "Network diagram"));
    if (plural === "floors") actions.append(link("#/floor/" + name, "Rack diagram"));
    if (plural === "racks") actions.append(link("#/rack/" + name, "Rack diagram"));
    if (await api.can("delete", plural, ns)) {
      actions.append(h("button", { class: "danger delete", id: "delete", onclick: () => remove(plural, ns, name, msg) }, "Delete"));
    }
    actions.dataset.ready = "true";
  })();
  const stops = [];
  stops.push(api.watch(plural, ns, (objs, inf) => {
    const o = objs.get(ns + "/" + name);
    if (!o) {
      msg.textContent = inf.error ? "Error: " + inf.error : "Not found (deleted?)";
      return;
    }
    msg.textContent = "live";
    isVm = !!(o.spec && o.spec.vm);
    showConsoleBtn();
    const st = o.status || {};
    const rows = [
      ["Kind", o.kind || plural], ["Phase", phaseOf(o)], ["Message", st.message || ""],
      ["Node", o.metadata.agentId || ""], ["Addresses", (st.addresses || []).join(", ")],
      ["Created", o.metadata.createdAt + " by " + (o.metadata.createdBy || "")],
      ["Version", o.metadata.resourceVersion],
    ];
    head.replaceChildren(...rows.flatMap(([k, v]) => [h("b", {}, k), h("span", { id: "field-" + k.toLowerCase(), class: k === "Phase" ? "phase phase-" + v : "" }, v)]));
    yaml.textContent = toYaml(o).replace(/^\n/, "");
  }));
  const evNs = api.CLUSTER_SCOPED.has(plural) ? "" : ns;
  for (const [kind, body] of [["events", events], ["alerts", alerts]]) {
    api.can("list", kind, evNs || "*").then((ok) => {
      if (!ok) {
        body.replaceChildren(h("tr", {}, h("td", { class: "muted" }, "not permitted")));
        return;
      }
      stops.push(api.watch(kind, evNs, (objs) => {
        const mine = [...objs.values()].filter((o) => relatedTo(o, name, plural));
        body.replaceChildren(...(mine.length ? mine.map((o) => h("tr", {},
          h("td", {}, link(detailHref(kind, o), o.metadata.name)), h("td", {}, phaseOf(o)),
          h("td", {}, (o.metadata.labels || {})["photon.io/severity"] || ""),
          h("td", {}, JSON.stringify(o.spec).slice(0, 120)))) : [h("tr", {}, h("td", { class: "muted" }, "none"))]));
      }));
    });
  }
  return () => {
    if (term) term.detach(); // leaving the page detaches; the VM runs on
    stops.forEach((s) => s());
  };
}

async function act(plural, ns, name, action, out, msg) {
  try {
    const r = await api.call("POST", api.objectPath(plural, ns, name) + "/actions/" + action, {});
    const op = r.operation;
    msg.textContent = action + ": operation " + op.metadata.id;
    // The operation's result is read once it is done, through a watch of operations.
    const stop = api.watch("operations", ns, (objs) => {
      for (const o of objs.values()) {
        if (o.metadata.id !== op.metadata.id) continue;
        const st = o.status || {};
        if (st.state === "DONE" || st.state === "FAILED") {
          msg.textContent = action + ": " + st.state;
          out.hidden = false;
          out.textContent = st.message || "";
          setTimeout(stop, 0);
        }
      }
    });
  } catch (e) {
    msg.textContent = action + " refused: " + e.message;
    msg.className = "error";
  }
}

export function createView(el) {
  const ta = h("textarea", { id: "create-text", spellcheck: "false", placeholder: "kind: ComputeInstance\nmetadata:\n  name: web-1\nspec:\n  process:\n    command: [/bin/sleep, \"3600\"]" });
  const result = h("div", { id: "create-result" });
  const btn = h("button", { id: "create-submit" }, "Create");
  btn.addEventListener("click", async () => {
    result.replaceChildren();
    let docs;
    try {
      docs = parseDocuments(ta.value);
    } catch (e) {
      result.append(h("p", { class: "error" }, "Not YAML/JSON: " + e.message));
      return;
    }
    for (const d of docs) {
      const plural = kindPlural(d.kind);
      if (!plural) {
        result.append(h("p", { class: "error" }, "kind: '" + d.kind + "' is not a kind the API serves"));
        continue;
      }
      const ns = api.CLUSTER_SCOPED.has(plural) ? "system" : (d.metadata && d.metadata.namespace) || (state.ns === "*" ? "default" : state.ns);
      try {
        await api.call("POST", api.collectionPath(plural, ns), d);
        const href = "#/kinds/" + plural + "/" + ns + "/" + d.metadata.name;
        result.append(h("p", { class: "ok" }, "Created ", link(href, plural + " " + ns + "/" + d.metadata.name, { class: "created" })));
        if (docs.length === 1) location.hash = href;
      } catch (e) {
        result.append(h("p", { class: "error" }, (d.metadata && d.metadata.name) + ": " + e.message));
      }
    }
  });
  el.replaceChildren(h("h1", {}, "Create from YAML or JSON"), h("p", { class: "muted" }, "One or more documents, separated by ---."), ta, h("div", { class: "toolbar" }, btn), result);
}

function kindPlural(kind) {
  if (!kind) return null;
  const lower = String(kind).toLowerCase();
  return KINDS.find((k) => k === lower || k === lower + "s" || k === lower + "es") || null;
}
