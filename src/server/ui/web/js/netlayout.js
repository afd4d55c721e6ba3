// Layered layout of a network graph (Sugiyama-style, without edge routing): layers from a BFS
// from the roots, order within a layer from the barycentres of the neighbours in the layer
// above and below (a few sweeps), long layers wrapped into rows. O(sweeps * (V + E) log V):
// a thousand devices and two thousand cables lay out in milliseconds, where a force-directed
// layout would take seconds for the same picture.
import { esc } from "./dom.js";

// nodes: [{id, label, kind, layer?, href?}], edges: [{a, b, cls?}], roots: [id] (layer 0).
export function layout(nodes, edges, roots, o) {
  const opts = Object.assign({ boxW: 110, boxH: 22, gapX: 14, gapY: 70, maxPerRow: 40 }, o || {});
  const byId = new Map(nodes.map((n, i) => [n.id, { ...n, i, order: 0 }]));
  const adj = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    if (!byId.has(e.a) || !byId.has(e.b) || e.a === e.b) continue;
    adj.get(e.a).push(e.b);
    adj.get(e.b).push(e.a);
  }
  // Layers: given ones stay, the rest by BFS distance from the roots (unreached: last layer).
  const queue = [];
  for (const r of roots) {
    const n = byId.get(r);
    if (n && n.layer === undefined) n.layer = 0;
  }
  for (const n of byId.values()) if (n.layer !== undefined) queue.push(n.id);
  for (let qi = 0; qi < queue.length; qi++) {
    const n = byId.get(queue[qi]);
    for (const m of adj.get(n.id)) {
      const o2 = byId.get(m);
      if (o2.layer === undefined) {
        o2.layer = n.layer + 1;
        queue.push(m);
      }
    }
  }
  let maxLayer = 0;
  for (const n of byId.values()) if (n.layer !== undefined) maxLayer = Math.max(maxLayer, n.layer);
  const layers = [];
  for (const n of byId.values()) {
    if (n.layer === undefined) n.layer = maxLayer + 1;
    (layers[n.layer] = layers[n.layer] || []).push(n);
  }
  for (let l = 0; l < layers.length; l++) {
    layers[l] = layers[l] || [];
    layers[l].sort((a, b) => a.label.localeCompare(b.label));
    layers[l].forEach((n, k) => (n.order = k));
  }
  // Barycentre sweeps: down using the layer above, up using the layer below.
  const sweep = (l, towards) => {
    const layer = layers[l];
    for (const n of layer) {
      let sum = 0;
      let cnt = 0;
      for (const m of adj.get(n.id)) {
        const o2 = byId.get(m);
        if (o2.layer === towards) {
          sum += o2.order / Math.max(1, layers[towards].length);
          cnt++;
        }
      }
      n.bary = cnt ? sum / cnt : n.order / Math.max(1, layer.length);
    }
    layer.sort((a, b) => a.bary - b.bary);
    layer.forEach((n, k) => (n.order = k));
  };
  for (let it = 0; it < 3; it++) {
    for (let l = 1; l < layers.length; l++) sweep(l, l - 1);
    for (let l = layers.length - 2; l >= 0; l--) sweep(l, l + 1);
  }
  // Coordinates: each layer centred, wrapped every maxPerRow boxes.
  const widest = Math.min(opts.maxPerRow, Math.max(1, ...layers.map((l) => l.length)));
  const width = widest * (opts.boxW + opts.gapX) + opts.gapX;
  let y = opts.gapY / 2;
  for (const layer of layers) {
    for (let start = 0; start < layer.length; start += opts.maxPerRow) {
      const row = layer.slice(start, start + opts.maxPerRow);
      const rowW = row.length * (opts.boxW + opts.gapX) - opts.gapX;
      row.forEach((n, k) => {
        n.x = (width - rowW) / 2 + k * (opts.boxW + opts.gapX);
        n.y = y;
      });
      y += opts.boxH + opts.gapX * 2;
    }
    y += opts.gapY - opts.boxH - opts.gapX * 2;
  }
  return { nodes: [...byId.values()], edges: edges.filter((e) => byId.has(e.a) && byId.has(e.b)), byId, width, height: y + opts.boxH, opts };
}

export function graphSvg(g) {
  const { boxW, boxH } = g.opts;
  const parts = ['<svg xmlns="http://www.w3.org/2000/svg" id="net-svg" width="' + g.width + '" height="' + g.height + '">'];
  for (const e of g.edges) {
    const a = g.byId.get(e.a);
    const b = g.byId.get(e.b);
    parts.push('<line class="link' + (e.cls ? " " + e.cls : "") + '" x1="' + (a.x + boxW / 2) + '" y1="' + (a.y + boxH / 2) + '" x2="' + (b.x + boxW / 2) + '" y2="' + (b.y + boxH / 2) + '"/>');
  }
  for (const n of g.nodes) {
    const open = n.href ? '<a href="' + esc(n.href) + '">' : "<g>";
    parts.push(open + '<rect class="node node-' + esc(n.kind) + '" data-id="' + esc(n.id) + '" x="' + n.x + '" y="' + n.y + '" width="' + boxW + '" height="' + boxH + '" rx="3"/>' +
      '<text x="' + (n.x + 4) + '" y="' + (n.y + 14) + '"' + (n.kind === "vpc" ? ' fill="#fff"' : "") + ">" + esc(n.label.length > 20 ? n.label.slice(0, 19) + "…" : n.label) + "</text>" + (n.href ? "</a>" : "</g>"));
  }
  parts.push("</svg>");
  return parts.join("");
}
