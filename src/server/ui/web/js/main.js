// The dashboard's shell: log-in, navigation and the hash router. Every view is a function
// (container, params) that draws itself and returns its cleanup (closing its watches).
import * as api from "./api.js";
import { h, link } from "./dom.js";
import { listView, detailView, createView, KINDS } from "./views.js";
import { topologyView, floorView, rackView, machineView, clusterView } from "./racks.js";
import { vpcNetworkView, nodeNetworkView, floorNetworkView } from "./network.js";

const main = document.getElementById("main");
let cleanup = null;
export const state = { whoami: null, ns: sessionStorage.getItem("photon.ns") || "default" };

function loginView(el) {
  const err = h("p", { class: "error", id: "login-error" });
  const tok = h("input", { id: "token", type: "password", autocomplete: "off", placeholder: "pc_…" });
  const user = h("input", { id: "user", autocomplete: "username" });
  const pass = h("input", { id: "password", type: "password", autocomplete: "current-password" });
  async function done(t) {
    api.setToken(t);
    try {
      state.whoami = await api.call("GET", "/v1/auth/whoami");
      location.hash = "#/";
      render();
    } catch (e) {
      api.setToken("");
      err.textContent = "Log-in failed: " + e.message;
    }
  }
  const byToken = h("form", { class: "login", id: "login-form" },
    h("h1", {}, "Log in"),
    h("label", { for: "token" }, "API token"), tok,
    h("button", { type: "submit", id: "login-button" }, "Log in with token"));
  byToken.addEventListener("submit", (e) => {
    e.preventDefault();
    done(tok.value.trim());
  });
  const byUser = h("form", { class: "login" },
    h("label", { for: "user" }, "User"), user,
    h("label", { for: "password" }, "Password"), pass,
    h("button", { type: "submit" }, "Log in as user"));
  byUser.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await fetch("/v1/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ user: user.value, password: pass.value }),
      });
      const j = await r.json();
      if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
      done(j.token || j.accessToken);
    } catch (x) {
      err.textContent = "Log-in failed: " + x.message;
    }
  });
  el.replaceChildren(byToken, h("p", { class: "muted" }, "or"), byUser, err);
}

function nav() {
  const navEl = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!state.whoami) {
    navEl.replaceChildren();
    who.replaceChildren();
    return;
  }
  navEl.replaceChildren(
    link("#/kinds/computeinstances", "Instances"),
    link("#/kinds/nodes", "Nodes"),
    link("#/topology", "Racks"),
    link("#/kinds/vpcs", "Networks"),
    link("#/kinds/events", "Events"),
    link("#/kinds/alerts", "Alerts"),
    link("#/create", "Create"),
    link("#/kinds", "All kinds"),
  );
  const nsInput = h("input", { id: "namespace", value: state.ns, size: 10, title: "namespace (* = all)" });
  nsInput.addEventListener("change", () => {
    state.ns = nsInput.value.trim() || "default";
    sessionStorage.setItem("photon.ns", state.ns);
    render();
  });
  const out = h("button", { id: "logout" }, "Log out");
  out.addEventListener("click", async () => {
    try {
      await api.call("POST", "/v1/auth/logout");
    } catch (e) {
      // a plain API token has no session to end; forgetting it is the log-out
    }
    api.setToken("");
    state.whoami = null;
    render();
  });
  who.replaceChildren("ns ", nsInput, " ", h("span", { id: "principal" }, state.whoami.principal), " ", out);
}

function kindsIndex(el) {
  el.replaceChildren(h("h1", {}, "Kinds"),
    h("p", { class: "kinds" }, KINDS.map((k) => link("#/kinds/" + k, k))));
}

const routes = [
  [/^#\/?$/, (el) => listView(el, { plural: "computeinstances" })],
  [/^#\/kinds$/, kindsIndex],
  [/^#\/kinds\/([a-z]+)$/, (el, m) => listView(el, { plural: m[1] })],
  [/^#\/kinds\/([a-z]+)\/([a-z0-9-]+)\/([a-z0-9.-]+)$/, (el, m) => detailView(el, { plural: m[1], ns: m[2], name: m[3] })],
  [/^#\/create$/, (el) => createView(el)],
  [/^#\/topology$/, (el) => topologyView(el)],
  [/^#\/floor\/([a-z0-9-]+)$/, (el, m) => floorView(el, m[1])],
  [/^#\/rack\/([a-z0-9-]+)$/, (el, m) => rackView(el, m[1])],
  [/^#\/machine\/([a-z0-9-]+)$/, (el, m) => machineView(el, m[1])],
  [/^#\/cluster\/([a-z0-9-]+)$/, (el, m) => clusterView(el, m[1])],
  [/^#\/network\/vpc\/([a-z0-9-]+)\/([a-z0-9-]+)$/, (el, m) => vpcNetworkView(el, m[1], m[2])],
  [/^#\/network\/device\/([a-z0-9-]+)$/, (el, m) => nodeNetworkView(el, m[1])],
  [/^#\/network\/floor\/([a-z0-9-]+)$/, (el, m) => floorNetworkView(el, m[1])],
];

export async function render() {
  if (cleanup) cleanup();
  cleanup = null;
  api.closeAllWatches();
  if (!state.whoami && api.token()) {
    try {
      state.whoami = await api.call("GET", "/v1/auth/whoami");
    } catch (e) {
      api.setToken("");
    }
  }
  nav();
  if (!state.whoami) {
    loginView(main);
    return;
  }
  const hash = location.hash || "#/";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === hash);
  for (const [re, view] of routes) {
    const m = hash.match(re);
    if (m) {
      main.replaceChildren();
      cleanup = view(main, m) || null;
      return;
    }
  }
  main.replaceChildren(h("p", { class: "error" }, "No page " + hash));
}

window.addEventListener("hashchange", render);
render();
