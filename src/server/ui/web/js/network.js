// Network diagrams (seed 003): a VPC with its subnets, the instances on them (through their
// Ports), load balancers and floating IPs; and from any physical device, the networks its ports
// belong to with every device on them and its cables (an L3 switch shows all its networks).
import { h, link } from "./dom.js";
import { liveJoin, timed } from "./live.js";
import { layout, graphSvg } from "./netlayout.js";

function draw(diagram, name, nodes, edges, roots) {
  timed(name, () => {
    const g = layout(nodes, edges, roots);
    diagram.innerHTML = graphSvg(g);
    diagram.setAttribute("data-nodes", g.nodes.length);
    diagram.setAttribute("data-links", g.edges.length);
  });
}

export function vpcNetworkView(el, ns, vpc) {
  const diagram = h("div", { class: "diagram", id: "net-diagram" });
  el.replaceChildren(h("h1", {}, "Network of VPC " + ns + "/" + vpc), h("p", {}, link("#/kinds/vpcs/" + ns + "/" + vpc, "object")), diagram);
  return liveJoin(diagram, [["vpcs", ns], ["subnets", ns], ["ports", ns], ["computeinstances", ns], ["loadbalancers", ns], ["floatingips", ns]], (d) => {
    const v = d.vpcs.find((x) => x.metadata.name === vpc);
    if (!v) {
      diagram.replaceChildren(h("p", { class: "error" }, "No VPC " + vpc));
      return;
    }
    const nodes = [{ id: "vpc", label: vpc + " " + (v.spec.cidrBlock || ""), kind: "vpc", layer: 0, href: "#/kinds/vpcs/" + ns + "/" + vpc }];
    const edges = [];
    const subnets = d.subnets.filter((s) => s.spec.vpcId === vpc || s.spec.vpcId === v.metadata.id);
    const subnetIds = new Map();
    for (const s of subnets) {
      const id = "subnet/" + s.metadata.name;
      subnetIds.set(s.metadata.name, id).set(s.metadata.id, id);
      nodes.push({ id, label: s.metadata.name + " " + (s.spec.cidrBlock || ""), kind: "subnet", layer: 1, href: "#/kinds/subnets/" + ns + "/" + s.metadata.name });
      edges.push({ a: "vpc", b: id });
    }
    const instById = new Map(d.computeinstances.map((i) => [i.metadata.id, i]));
    for (const p of d.ports) {
      const sid = subnetIds.get(p.spec.subnet);
      const inst = instById.get(p.spec.instance);
      if (!sid || !inst) continue;
      const id = "ci/" + inst.metadata.name;
      nodes.push({ id, label: inst.metadata.name + " " + (p.spec.ipAddress || ""), kind: "instance", layer: 2, href: "#/kinds/computeinstances/" + ns + "/" + inst.metadata.name });
      edges.push({ a: sid, b: id });
      for (const f of d.floatingips) {
        if (f.spec.instance !== inst.metadata.name) continue;
        nodes.push({ id: "fip/" + f.metadata.name, label: "fip " + (f.spec.address || f.metadata.name), kind: "network", layer: 3, href: "#/kinds/floatingips/" + ns + "/" + f.metadata.name });
        edges.push({ a: id, b: "fip/" + f.metadata.name });
      }
    }
    for (const lb of d.loadbalancers) {
      const on = (lb.spec.subnetIds || []).map((s) => subnetIds.get(s)).filter(Boolean);
      if (!on.length) continue;
      const id = "lb/" + lb.metadata.name;
      nodes.push({ id, label: "lb " + lb.metadata.name, kind: "loadbalancer", layer: 2, href: "#/kinds/loadbalancers/" + ns + "/" + lb.metadata.name });
      for (const s of on) edges.push({ a: s, b: id });
    }
    draw(diagram, "vpc", nodes, edges, ["vpc"]);
  });
}

// The networks of one device and what is on them; or, for "floor:NAME", every device of a
// floor and every cable between them.
export function deviceGraph(devices, start) {
  const nodes = [];
  const edges = [];
  const seen = new Set();
  const add = (n) => {
    if (!seen.has(n.id)) {
      seen.add(n.id);
      nodes.push(n);
    }
  };
  const devNode = (p, layer) => ({ id: "dev/" + p.metadata.name, label: p.metadata.name, kind: "device", layer, href: "#/machine/" + p.metadata.name });
  const me = devices.find((p) => p.metadata.name === start);
  if (!me) return null;
  add(devNode(me, 0));
  const nets = new Set((me.spec.ports || []).map((pt) => pt.network).filter(Boolean));
  for (const net of nets) {
    add({ id: "net/" + net, label: net, kind: "network", layer: 1 });
    edges.push({ a: "dev/" + start, b: "net/" + net });
  }
  for (const p of devices) {
    if (p === me) continue;
    for (const pt of p.spec.ports || []) {
      if (!nets.has(pt.network)) continue;
      add(devNode(p, 2));
      edges.push({ a: "net/" + pt.network, b: "dev/" + p.metadata.name });
    }
  }
  for (const l of me.spec.links || []) {
    if (!devices.some((p) => p.metadata.name === l.peer)) continue;
    add(devNode(devices.find((p) => p.metadata.name === l.peer), 2));
    edges.push({ a: "dev/" + start, b: "dev/" + l.peer, cls: "cable" });
  }
  return { nodes, edges, roots: ["dev/" + start] };
}

// Every device of the racks given and the cables between them, routers at the top.
export function cablingGraph(devices) {
  const names = new Set(devices.map((p) => p.metadata.name));
  const nodes = devices.map((p) => ({ id: "dev/" + p.metadata.name, label: p.metadata.name, kind: "device", href: "#/machine/" + p.metadata.name }));
  const edges = [];
  const cabled = new Set(); // one line per pair, whichever side declares the cable
  for (const p of devices) {
    for (const l of p.spec.links || []) {
      if (!names.has(l.peer)) continue;
      const a = p.metadata.name < l.peer ? p.metadata.name : l.peer;
      const b = a === l.peer ? p.metadata.name : l.peer;
      if (cabled.has(a + "|" + b)) continue;
      cabled.add(a + "|" + b);
      edges.push({ a: "dev/" + a, b: "dev/" + b });
    }
  }
  let roots = devices.filter((p) => p.spec.type === "router").map((p) => "dev/" + p.metadata.name);
  if (!roots.length && nodes.length) roots = [nodes[0].id];
  return { nodes, edges, roots };
}

export function nodeNetworkView(el, name) {
  const diagram = h("div", { class: "diagram", id: "net-diagram" });
  el.replaceChildren(h("h1", {}, "Networks of " + name), h("p", {}, link("#/machine/" + name, "machine")), diagram);
  return liveJoin(diagram, [["physicalresources", "system"]], (d) => {
    const g = deviceGraph(d.physicalresources, name);
    if (!g) {
      diagram.replaceChildren(h("p", { class: "error" }, "No physical resource " + name));
      return;
    }
    draw(diagram, "device-network", g.nodes, g.edges, g.roots);
  });
}

export function floorNetworkView(el, floor) {
  const diagram = h("div", { class: "diagram", id: "net-diagram" });
  el.replaceChildren(h("h1", {}, "Cabling of floor " + floor), h("p", {}, link("#/floor/" + floor, "rack diagram")), diagram);
  return liveJoin(diagram, [["racks", "system"], ["physicalresources", "system"]], (d) => {
    const racks = new Set(d.racks.filter((r) => r.spec.floor === floor).map((r) => r.metadata.name));
    const g = cablingGraph(d.physicalresources.filter((p) => racks.has(p.spec.rack)));
    draw(diagram, "floor-network", g.nodes, g.edges, g.roots);
  });
}
