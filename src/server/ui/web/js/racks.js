// Rack diagrams (seed 003): datacenters with their floors and clusters; a floor's racks side by
// side, front and rear; one rack; one machine with its instances; a cluster's virtual view
// (which instances run on which machine). Drill-down: datacenter -> floor -> rack -> machine ->
// instances.
import { h, link, phaseOf } from "./dom.js";
import { liveJoin, timed } from "./live.js";
import { drawFloorCanvas, floorSvg, followCanvasClicks, followClicks, placeDevices, sortRacks } from "./rackdraw.js";
import { state } from "./main.js";

const SYS = "system";

function instancesByNode(instances) {
  const m = new Map();
  for (const i of instances || []) {
    const n = i.metadata.agentId;
    if (!n) continue;
    if (!m.has(n)) m.set(n, []);
    m.get(n).push(i);
  }
  return m;
}

function instNs() {
  return state.ns === "*" ? "" : state.ns;
}

export function topologyView(el) {
  const body = h("div", { id: "topology" });
  el.replaceChildren(h("h1", {}, "Datacenters"), body);
  return liveJoin(body, [["datacenters", SYS], ["floors", SYS], ["racks", SYS], ["physicalresources", SYS]], (d) => {
    const rackFloor = new Map(d.racks.map((r) => [r.metadata.name, r.spec.floor]));
    const floorDc = new Map(d.floors.map((f) => [f.metadata.name, f.spec.datacenter]));
    const out = [];
    for (const dc of d.datacenters.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
      const name = dc.metadata.name;
      const floors = d.floors.filter((f) => f.spec.datacenter === name).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
      const clusters = new Set();
      for (const p of d.physicalresources) {
        if (p.spec.cluster && floorDc.get(rackFloor.get(p.spec.rack)) === name) clusters.add(p.spec.cluster);
      }
      out.push(h("h2", { id: "dc-" + name }, name, " ", h("span", { class: "muted" }, (dc.spec && dc.spec.location) || "")),
        h("p", {}, "Floors: ", floors.length ? floors.map((f) => [link("#/floor/" + f.metadata.name, f.metadata.name, { class: "floor-link" }),
          " (" + d.racks.filter((r) => r.spec.floor === f.metadata.name).length + " racks) "]) : h("span", { class: "muted" }, "none")),
        h("p", {}, "Clusters: ", clusters.size ? [...clusters].sort().map((c) => [link("#/cluster/" + c, c, { class: "cluster-link" }), " "]) : h("span", { class: "muted" }, "none")));
    }
    if (!out.length) out.push(h("p", { class: "muted" }, "No datacenters yet: create Datacenter, Floor, Rack and PhysicalResource objects (Create page)."));
    body.replaceChildren(...out);
  });
}

function deviceInfo(nodes, byNode) {
  const nodeByName = new Map(nodes.map((n) => [n.metadata.name, n]));
  return (d) => {
    if (!d.spec.node) return {};
    const n = nodeByName.get(d.spec.node);
    const cond = n && n.nodeStatus ? n.nodeStatus.condition : "";
    const count = (byNode.get(d.spec.node) || []).length;
    return { cls: cond === "DOWN" ? "dev-down" : "", label: count ? "(" + count + ")" : "" };
  };
}

export function floorView(el, floor) {
  const title = h("h1", {}, "Floor " + floor);
  const crumbs = h("p", { id: "crumbs" });
  const diagram = h("div", { class: "diagram", id: "floor-diagram" });
  const problems = h("ul", { class: "error", id: "floor-problems" });
  const canvas = h("canvas", { id: "floor-canvas" });
  diagram.append(canvas);
  el.replaceChildren(title, crumbs, diagram, problems);
  followCanvasClicks(canvas);
  let lastConditions = null;
  return liveJoin(diagram, [["floors", SYS], ["racks", SYS], ["physicalresources", SYS], ["nodes", SYS], ["computeinstances", instNs()]], (d, changed) => {
    // Heartbeats change nodes every second: redraw only when a condition changed.
    const conditions = d.nodes.map((n) => n.metadata.name + (n.nodeStatus ? n.nodeStatus.condition : "")).join();
    if (changed.size === 1 && changed.has("nodes") && conditions === lastConditions) return;
    lastConditions = conditions;
    const f = d.floors.find((x) => x.metadata.name === floor);
    crumbs.replaceChildren(link("#/topology", "Datacenters"), " › ", f ? f.spec.datacenter : "?", " › ", floor, " · ", link("#/network/floor/" + floor, "cabling"));
    const racks = sortRacks(d.racks.filter((r) => r.spec.floor === floor));
    timed("floor", () => {
      const { byRack, problems: bad } = placeDevices(racks, d.physicalresources);
      canvas.photonRegions = drawFloorCanvas(canvas, racks, byRack, { info: deviceInfo(d.nodes, instancesByNode(d.computeinstances)) });
      if (!canvas.isConnected) diagram.replaceChildren(canvas); // after an error message
      diagram.setAttribute("data-racks", racks.length);
      diagram.setAttribute("data-devices", [...byRack.values()].reduce((a, l) => a + l.length, 0));
      problems.replaceChildren(...bad.map((p) => h("li", {}, p)));
    });
  });
}

export function rackView(el, rack) {
  const crumbs = h("p", { id: "crumbs" });
  const diagram = h("div", { class: "diagram", id: "rack-diagram" });
  const table = h("tbody", {});
  el.replaceChildren(h("h1", {}, "Rack " + rack), crumbs, diagram, h("h2", {}, "Machines"), h("table", {}, table));
  followClicks(diagram);
  return liveJoin(diagram, [["floors", SYS], ["racks", SYS], ["physicalresources", SYS], ["nodes", SYS], ["computeinstances", instNs()]], (d) => {
    const r = d.racks.find((x) => x.metadata.name === rack);
    if (!r) {
      diagram.replaceChildren(h("p", { class: "error" }, "No rack " + rack));
      return;
    }
    const f = d.floors.find((x) => x.metadata.name === r.spec.floor);
    crumbs.replaceChildren(link("#/topology", "Datacenters"), " › ", f ? f.spec.datacenter : "?", " › ", link("#/floor/" + r.spec.floor, r.spec.floor), " › ", rack);
    const byNode = instancesByNode(d.computeinstances);
    const { byRack } = placeDevices([r], d.physicalresources);
    const devs = (byRack.get(rack) || []).sort((a, b) => b.spec.positionU - a.spec.positionU);
    diagram.innerHTML = floorSvg([r], byRack, { rackWidth: 220, unitHeight: 16, info: deviceInfo(d.nodes, byNode) });
    table.replaceChildren(...devs.map((p) => h("tr", {},
      h("td", {}, "U" + p.spec.positionU), h("td", {}, link("#/machine/" + p.metadata.name, p.metadata.name)),
      h("td", {}, p.spec.type), h("td", {}, p.spec.model), h("td", {}, p.spec.face),
      h("td", {}, (byNode.get(p.spec.node) || []).map((i) => [link("#/kinds/computeinstances/" + i.metadata.namespace + "/" + i.metadata.name, i.metadata.name), " "])))));
  });
}

export function machineView(el, name) {
  const body = h("div", { id: "machine" });
  el.replaceChildren(h("h1", {}, "Machine " + name), body);
  return liveJoin(body, [["racks", SYS], ["physicalresources", SYS], ["nodes", SYS], ["computeinstances", instNs()]], (d) => {
    const p = d.physicalresources.find((x) => x.metadata.name === name);
    if (!p) {
      body.replaceChildren(h("p", { class: "error" }, "No physical resource " + name));
      return;
    }
    const s = p.spec;
    const rack = d.racks.find((r) => r.metadata.name === s.rack);
    const node = d.nodes.find((n) => n.metadata.name === s.node);
    const insts = s.node ? d.computeinstances.filter((i) => i.metadata.agentId === s.node) : [];
    body.replaceChildren(
      h("p", {}, link("#/topology", "Datacenters"), " › ", rack ? link("#/floor/" + rack.spec.floor, rack.spec.floor) : "?", " › ", link("#/rack/" + s.rack, s.rack), " › ", name),
      h("div", { class: "grid2" },
        h("b", {}, "Type"), h("span", {}, s.type), h("b", {}, "Model"), h("span", {}, s.model),
        h("b", {}, "Place"), h("span", {}, s.rack + " U" + s.positionU + "-" + (s.positionU + s.heightU - 1) + " " + s.face),
        h("b", {}, "Serial"), h("span", {}, s.serial || ""), h("b", {}, "Cluster"), h("span", {}, s.cluster ? link("#/cluster/" + s.cluster, s.cluster) : ""),
        h("b", {}, "Node"), h("span", {}, s.node ? [link("#/kinds/nodes/system/" + s.node, s.node), " ", node && node.nodeStatus ? node.nodeStatus.condition : "(no such node)"] : "")),
      h("p", {}, link("#/network/device/" + name, "Network diagram of " + name), " · ", link("#/kinds/physicalresources/system/" + name, "object")),
      h("h2", {}, "Instances on this machine"),
      h("table", { id: "machine-instances" }, h("tbody", {}, insts.length ? insts.map((i) => h("tr", {},
        h("td", {}, link("#/kinds/computeinstances/" + i.metadata.namespace + "/" + i.metadata.name, i.metadata.namespace + "/" + i.metadata.name)),
        h("td", { class: "phase phase-" + phaseOf(i) }, phaseOf(i)))) : h("tr", {}, h("td", { class: "muted" }, "none")))),
      h("h2", {}, "Ports"),
      h("table", {}, h("tbody", {}, (s.ports || []).map((pt) => {
        const l = (s.links || []).find((x) => x.port === pt.name);
        return h("tr", {}, h("td", {}, pt.name), h("td", {}, pt.network || ""), h("td", {}, pt.ip || ""), h("td", {}, pt.mac || ""),
          h("td", {}, l ? ["→ ", link("#/machine/" + l.peer, l.peer), " " + l.peerPort] : ""));
      }))));
  });
}

export function clusterView(el, cluster) {
  const body = h("div", { id: "cluster" });
  el.replaceChildren(h("h1", {}, "Cluster " + cluster + " (virtual view)"), body);
  return liveJoin(body, [["physicalresources", SYS], ["nodes", SYS], ["computeinstances", instNs()]], (d) => {
    const byNode = instancesByNode(d.computeinstances);
    const machines = d.physicalresources.filter((p) => p.spec.cluster === cluster && p.spec.node)
      .sort((a, b) => a.spec.rack.localeCompare(b.spec.rack) || b.spec.positionU - a.spec.positionU);
    const racks = [...new Set(machines.map((m) => m.spec.rack))];
    timed("cluster", () => {
      body.replaceChildren(...racks.map((r) => h("section", { class: "cluster-rack" },
        h("h2", {}, link("#/rack/" + r, r)),
        h("table", {}, h("tbody", {}, machines.filter((m) => m.spec.rack === r).map((m) => h("tr", { id: "machine-" + m.metadata.name },
          h("td", {}, link("#/machine/" + m.metadata.name, m.metadata.name)), h("td", {}, "U" + m.spec.positionU),
          h("td", {}, link("#/kinds/nodes/system/" + m.spec.node, m.spec.node)),
          h("td", {}, (byNode.get(m.spec.node) || []).map((i) => [link("#/kinds/computeinstances/" + i.metadata.namespace + "/" + i.metadata.name, i.metadata.name, { class: "phase-" + phaseOf(i) }), " "])))))))));
      if (!racks.length) body.replaceChildren(h("p", { class: "muted" }, "No machines with a node in cluster " + cluster));
    });
  });
}
