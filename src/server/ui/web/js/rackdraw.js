// Draws racks as SVG markup (one string, set once: thousands of elements built by the browser's
// parser in one go are much faster than as many createElementNS calls). Pure functions of the
// objects; names are escaped.
import { esc } from "./dom.js";

export const TYPES = ["server", "switch", "router", "storage", "pdu", "other"];

// Devices of each rack by name, and the ones that cannot be drawn where they claim to be.
export function placeDevices(racks, devices) {
  const byRack = new Map(racks.map((r) => [r.metadata.name, []]));
  const problems = [];
  for (const d of devices) {
    const s = d.spec || {};
    const list = byRack.get(s.rack);
    if (!list) continue; // a rack of another floor
    const rack = racks.find((r) => r.metadata.name === s.rack);
    const top = (s.positionU || 0) + (s.heightU || 0) - 1;
    if (top > (rack.spec.heightU || 0)) {
      problems.push(d.metadata.name + ": units " + s.positionU + ".." + top + " do not fit rack " + s.rack + " (" + rack.spec.heightU + " U)");
      continue;
    }
    const clash = list.find((o) => o.spec.face === s.face && o.spec.positionU <= top && s.positionU <= o.spec.positionU + o.spec.heightU - 1);
    if (clash) problems.push(d.metadata.name + ": overlaps " + clash.metadata.name + " in rack " + s.rack + " (" + s.face + ")");
    list.push(d);
  }
  return { byRack, problems };
}

export function sortRacks(racks) {
  return [...racks].sort((a, b) => (a.spec.row || 0) - (b.spec.row || 0) || (a.spec.position || 0) - (b.spec.position || 0) || a.metadata.name.localeCompare(b.metadata.name));
}

// One face ("front" or "rear") of one rack at (x, y). info(device) gives {cls, label} extras.
// Devices mounted from this face are a rect and a label each; those mounted from the other
// face (seen through the rack) are one faded path for the whole face. Clicks are followed
// through data-href (followClicks): no <a> per device, half the elements to lay out.
function rackFace(rack, devices, face, x, y, o) {
  const hu = rack.spec.heightU || 0;
  const w = o.rackWidth;
  const uh = o.unitHeight;
  let s = '<g transform="translate(' + x + "," + y + ')">';
  s += '<text class="rack-title" data-href="#/rack/' + esc(rack.metadata.name) + '" x="0" y="-6">' + esc(rack.metadata.name) + " · " + face + "</text>";
  s += '<rect class="rack" x="0" y="0" width="' + w + '" height="' + hu * uh + '" fill="url(#units)"/>';
  let ghost = "";
  for (const d of devices) {
    const ds = d.spec;
    const top = (hu - (ds.positionU + ds.heightU - 1)) * uh + 0.5; // U1 at the bottom
    const height = ds.heightU * uh - 1;
    if (ds.face !== face) {
      ghost += "M2," + top + "h" + (w - 4) + "v" + height + "h" + (4 - w) + "z";
      continue;
    }
    const extra = o.info ? o.info(d) : {};
    const cls = "dev dev-" + (TYPES.includes(ds.type) ? ds.type : "other") + (extra.cls ? " " + extra.cls : "");
    s += '<rect class="' + cls + '" data-href="#/machine/' + esc(d.metadata.name) + '" x="2" y="' + top + '" width="' + (w - 4) + '" height="' + height + '"/>';
    if (uh * ds.heightU >= 8) {
      s += '<text x="5" y="' + (top + Math.min(height + 1, 12) - 2.5) + '">' + esc(d.metadata.name) + (extra.label ? " " + esc(extra.label) : "") + "</text>";
    }
  }
  if (ghost) s += '<path class="ghost" d="' + ghost + '"/>';
  return s + "</g>";
}

// Clicks on a drawn device or rack title go to its page.
export function followClicks(el) {
  el.addEventListener("click", (e) => {
    const t = e.target.closest && e.target.closest("[data-href]");
    if (t) location.hash = t.getAttribute("data-href");
  });
}

// All racks side by side, the front faces in one row and the rear faces below.
export function floorSvg(racks, byRack, o) {
  const opts = Object.assign({ rackWidth: 120, unitHeight: 9, gap: 16, info: null }, o || {});
  const maxU = Math.max(1, ...racks.map((r) => r.spec.heightU || 0));
  const rowH = maxU * opts.unitHeight + 30;
  const width = racks.length * (opts.rackWidth + opts.gap) + opts.gap;
  const faces = opts.faces || ["front", "rear"];
  const parts = [];
  parts.push('<svg xmlns="http://www.w3.org/2000/svg" id="floor-svg" width="' + width + '" height="' + (faces.length * rowH + 10) + '">');
  parts.push('<defs><pattern id="units" width="' + opts.rackWidth + '" height="' + opts.unitHeight + '" patternUnits="userSpaceOnUse"><line class="u" x1="0" y1="0" x2="' + opts.rackWidth + '" y2="0"/></pattern></defs>');
  faces.forEach((face, fi) => {
    racks.forEach((r, i) => {
      const x = opts.gap + i * (opts.rackWidth + opts.gap);
      const y = fi * rowH + 22 + (maxU - (r.spec.heightU || 0)) * opts.unitHeight;
      parts.push(rackFace(r, byRack.get(r.metadata.name) || [], face, x, y, opts));
    });
  });
  parts.push("</svg>");
  return parts.join("");
}

const FILL = { server: "#8fb8e8", switch: "#9fd6a6", router: "#9fd6a6", storage: "#e8c88f", pdu: "#d0a0d8", other: "#c9ced6" };

// The floor view on one canvas: 50 racks with 2,000 devices are ~6,000 shapes, which as SVG
// elements cost the browser hundreds of milliseconds of style and layout; drawn on a canvas they
// cost a few milliseconds of paint (bench/ui). Returns the clickable regions
// [{x, y, w, h, href, name}] in CSS pixels; followCanvasClicks turns clicks into navigation.
export function drawFloorCanvas(canvas, racks, byRack, o) {
  const opts = Object.assign({ rackWidth: 120, unitHeight: 9, gap: 16, info: null }, o || {});
  const faces = ["front", "rear"];
  const maxU = Math.max(1, ...racks.map((r) => r.spec.heightU || 0));
  const rowH = maxU * opts.unitHeight + 30;
  const width = racks.length * (opts.rackWidth + opts.gap) + opts.gap;
  const height = faces.length * rowH + 10;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.ceil(width * dpr);
  canvas.height = Math.ceil(height * dpr);
  canvas.style.width = width + "px";
  canvas.style.height = height + "px";
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.font = "10px system-ui, sans-serif";
  g.textBaseline = "alphabetic";
  const regions = [];
  const w = opts.rackWidth;
  const uh = opts.unitHeight;
  faces.forEach((face, fi) => {
    racks.forEach((r, i) => {
      const hu = r.spec.heightU || 0;
      const x = opts.gap + i * (w + opts.gap);
      const y = fi * rowH + 22 + (maxU - hu) * uh;
      g.fillStyle = "#1d2330";
      g.font = "600 11px system-ui, sans-serif";
      g.fillText(r.metadata.name + " · " + face, x, y - 6, w);
      g.font = "10px system-ui, sans-serif";
      regions.push({ x, y: y - 18, w, h: 14, href: "#/rack/" + r.metadata.name, name: r.metadata.name });
      g.fillStyle = "#fafbfc";
      g.fillRect(x, y, w, hu * uh);
      g.strokeStyle = "#e6e8ec";
      g.lineWidth = 1;
      g.beginPath();
      for (let u = 1; u < hu; u++) {
        g.moveTo(x, y + u * uh + 0.5);
        g.lineTo(x + w, y + u * uh + 0.5);
      }
      g.stroke();
      g.strokeStyle = "#39414f";
      g.lineWidth = 1.5;
      g.strokeRect(x, y, w, hu * uh);
      g.lineWidth = 0.6;
      for (const d of byRack.get(r.metadata.name) || []) {
        const ds = d.spec;
        const top = y + (hu - (ds.positionU + ds.heightU - 1)) * uh + 0.5;
        const dh = ds.heightU * uh - 1;
        const own = ds.face === face;
        const extra = own && opts.info ? opts.info(d) : {};
        g.globalAlpha = own ? 1 : 0.35;
        g.fillStyle = extra.cls === "dev-down" ? "#f0a09a" : FILL[ds.type] || FILL.other;
        g.fillRect(x + 2, top, w - 4, dh);
        g.strokeRect(x + 2, top, w - 4, dh);
        g.globalAlpha = 1;
        if (!own) continue;
        regions.push({ x: x + 2, y: top, w: w - 4, h: dh, href: "#/machine/" + d.metadata.name, name: d.metadata.name });
        if (dh >= 7) {
          g.fillStyle = "#1d2330";
          g.fillText(d.metadata.name + (extra.label ? " " + extra.label : ""), x + 5, top + Math.min(dh + 1, 12) - 2.5, w - 8);
        }
      }
    });
  });
  return regions;
}

// Clicks on a canvas drawn by drawFloorCanvas go to the device's or rack's page; the device
// under the pointer is its tooltip.
export function followCanvasClicks(canvas) {
  const at = (e) => {
    const b = canvas.getBoundingClientRect();
    const x = e.clientX - b.left;
    const y = e.clientY - b.top;
    return (canvas.photonRegions || []).find((r) => x >= r.x && x <= r.x + r.w && y >= r.y && y <= r.y + r.h);
  };
  canvas.addEventListener("click", (e) => {
    const r = at(e);
    if (r) location.hash = r.href;
  });
  canvas.addEventListener("mousemove", (e) => {
    const r = at(e);
    canvas.title = r ? r.name : "";
    canvas.style.cursor = r ? "pointer" : "default";
  });
}
