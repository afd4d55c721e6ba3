// The YAML the dashboard reads from a pasted document: block mappings and sequences, plain,
// quoted and flow ([a, b], {k: v}) scalars, comments and "---" between documents. Anchors,
// tags and multi-line scalars are refused with the line that uses them, never guessed.
// JSON is YAML too: a document starting with { or [ is parsed as JSON.

export function parseDocuments(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    const v = JSON.parse(trimmed);
    return Array.isArray(v) ? v : [v];
  }
  const docs = [];
  let cur = [];
  for (const line of text.split("\n")) {
    if (/^---\s*$/.test(line)) {
      docs.push(cur);
      cur = [];
    } else cur.push(line);
  }
  docs.push(cur);
  return docs.map(parseLines).filter((d) => d !== null);
}

function stripComment(line) {
  let q = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) {
      if (c === q) q = null;
    } else if (c === '"' || c === "'") q = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
  }
  return line;
}

function parseLines(lines) {
  const items = [];
  lines.forEach((raw, i) => {
    const line = stripComment(raw).replace(/\s+$/, "");
    if (!line.trim()) return;
    if (/\t/.test(line.match(/^\s*/)[0])) throw new Error("line " + (i + 1) + ": tabs in indentation");
    items.push({ indent: line.match(/^ */)[0].length, text: line.trim(), no: i + 1 });
  });
  if (!items.length) return null;
  const pos = { i: 0 };
  const v = parseBlock(items, pos, items[0].indent);
  if (pos.i < items.length) throw new Error("line " + items[pos.i].no + ": unexpected indentation");
  return v;
}

function parseBlock(items, pos, indent) {
  const first = items[pos.i];
  if (first.text.startsWith("- ") || first.text === "-") return parseSeq(items, pos, indent);
  return parseMap(items, pos, indent);
}

function parseSeq(items, pos, indent) {
  const out = [];
  while (pos.i < items.length && items[pos.i].indent === indent && (items[pos.i].text.startsWith("- ") || items[pos.i].text === "-")) {
    const it = items[pos.i];
    const rest = it.text === "-" ? "" : it.text.slice(2).trim();
    if (!rest) {
      pos.i++;
      out.push(pos.i < items.length && items[pos.i].indent > indent ? parseBlock(items, pos, items[pos.i].indent) : null);
    } else if (isKeyValue(rest)) {
      // "- key: value" starts a mapping whose other keys sit under the key.
      const inner = it.indent + 2;
      items[pos.i] = { indent: inner, text: rest, no: it.no };
      out.push(parseMap(items, pos, inner));
    } else {
      out.push(scalar(rest, it.no));
      pos.i++;
    }
  }
  return out;
}

function isKeyValue(text) {
  return /^("[^"]*"|'[^']*'|[^\s"'{[][^:]*?):(\s|$)/.test(text);
}

function parseMap(items, pos, indent) {
  const out = {};
  while (pos.i < items.length && items[pos.i].indent === indent) {
    const it = items[pos.i];
    const m = it.text.match(/^("[^"]*"|'[^']*'|[^:]+?):(?:\s+(.*))?$/);
    if (!m) throw new Error("line " + it.no + ": want 'key: value'");
    const key = m[1].replace(/^["']|["']$/g, "");
    const rest = (m[2] || "").trim();
    pos.i++;
    if (rest) out[key] = scalar(rest, it.no);
    else if (pos.i < items.length && items[pos.i].indent > indent) out[key] = parseBlock(items, pos, items[pos.i].indent);
    else if (pos.i < items.length && items[pos.i].indent === indent && items[pos.i].text.startsWith("- "))
      out[key] = parseSeq(items, pos, indent); // a list at the key's own indentation
    else out[key] = null;
  }
  return out;
}

function scalar(text, no) {
  if (/^[&*!|>]/.test(text)) throw new Error("line " + no + ": anchors, tags and block scalars are not supported; use JSON");
  if (text.startsWith('"')) return JSON.parse(text);
  if (text.startsWith("'")) return text.slice(1, -1).replace(/''/g, "'");
  if (text.startsWith("[") || text.startsWith("{")) return flow(text, no);
  if (text === "true") return true;
  if (text === "false") return false;
  if (text === "null" || text === "~") return null;
  if (/^-?\d+$/.test(text)) return parseInt(text, 10);
  if (/^-?\d*\.\d+$/.test(text)) return parseFloat(text);
  return text;
}

function flow(text, no) {
  let i = 0;
  const ws = () => {
    while (i < text.length && text[i] === " ") i++;
  };
  const value = () => {
    ws();
    if (text[i] === "[") {
      i++;
      const arr = [];
      ws();
      if (text[i] === "]") return i++, arr;
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return i++, arr;
        else throw new Error("line " + no + ": bad flow sequence");
      }
    }
    if (text[i] === "{") {
      i++;
      const obj = {};
      ws();
      if (text[i] === "}") return i++, obj;
      for (;;) {
        ws();
        const k = atom(":");
        if (text[i] !== ":") throw new Error("line " + no + ": bad flow mapping");
        i++;
        obj[k] = value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return i++, obj;
        else throw new Error("line " + no + ": bad flow mapping");
      }
    }
    ws();
    if (text[i] === '"' || text[i] === "'") return atom(",]}"); // quoted: always a string
    return scalar(atom(",]}"), no);
  };
  const atom = (stops) => {
    ws();
    if (text[i] === '"' || text[i] === "'") {
      const q = text[i];
      const start = i++;
      while (i < text.length && text[i] !== q) i += text[i] === "\\" ? 2 : 1;
      i++;
      const raw = text.slice(start, i);
      return q === '"' ? JSON.parse(raw) : raw.slice(1, -1);
    }
    const start = i;
    while (i < text.length && !stops.includes(text[i])) i++;
    return text.slice(start, i).trim();
  };
  const v = value();
  ws();
  if (i !== text.length) throw new Error("line " + no + ": trailing text after flow value");
  return v;
}

// Objects as YAML, for the detail pages.
export function toYaml(v, indent = "") {
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) {
    if (!v.length) return "[]";
    return v.map((x) => "\n" + indent + "- " + toYaml(x, indent + "  ").replace(/^\n\s*/, "")).join("");
  }
  if (typeof v === "object") {
    const keys = Object.keys(v);
    if (!keys.length) return "{}";
    return keys
      .map((k) => {
        const x = v[k];
        const inner = toYaml(x, indent + "  ");
        const block = x && typeof x === "object" && Object.keys(x).length;
        return "\n" + indent + k + ":" + (block ? inner : " " + inner);
      })
      .join("");
  }
  if (typeof v === "string") return /^[\w./@-][\w ./@:-]*$/.test(v) && !/^(true|false|null|~|-?\d+(\.\d+)?)$/.test(v) && !/: /.test(v) ? v : JSON.stringify(v);
  return String(v);
}
