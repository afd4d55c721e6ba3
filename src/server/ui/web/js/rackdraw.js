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
function rackFace(rack, devices, face, x, y, o) {
  const hu = rack.spec.heightU || 0;
  const w = o.rackWidth;
  const uh = o.unitHeight;
  let s = '<g transform="translate(' + x + "," + y + ')">';
  s += '<a href="#/rack/' + esc(rack.metadata.name) + '"><text class="rack-title" x="0" y="-6">' + esc(rack.metadata.name) + " · " + face + "</text></a>";
  s += '<rect class="rack" x="0" y="0" width="' + w + '" height="' + hu * uh + '" fill="url(#units)"/>';
  for (const d of devices) {
    const ds = d.spec;
    const own = ds.face === face;
    const top = hu - (ds.positionU + ds.heightU - 1); // U1 at the bottom
    const extra = o.info ? o.info(d) : {};
    const cls = "dev dev-" + (TYPES.includes(ds.type) ? ds.type : "other") + (extra.cls ? " " + extra.cls : "");
    s += '<a href="#/machine/' + esc(d.metadata.name) + '"><rect class="' + cls + '" x="2" y="' + (top * uh + 0.5) + '" width="' + (w - 4) + '" height="' + (ds.heightU * uh - 1) + '"' + (own ? "" : ' opacity=".35"') + "/>";
    if (own && uh * ds.heightU >= 8) {
      s += '<text x="5" y="' + (top * uh + Math.min(ds.heightU * uh, 12) - 2) + '">' + esc(d.metadata.name) + (extra.label ? " " + esc(extra.label) : "") + "</text>";
    }
    s += "</a>";
  }
  return s + "</g>";
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
