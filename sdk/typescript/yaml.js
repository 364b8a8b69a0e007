// A small YAML writer for workflow configurations (no dependencies). Mappings and lists
// in block style; every string double-quoted (JSON's escapes are YAML's), except text of
// several lines, written as a literal block so tasks stay readable.

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const RESERVED = new Set(["true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"]);
// Characters a literal block cannot hold as they are.
// eslint-disable-next-line no-control-regex
const UNBLOCKABLE = /[\x00-\x08\x0b-\x1f\x7f\u0085\u2028\u2029\ufeff]/;

function key(k) {
  return PLAIN_KEY.test(k) && !RESERVED.has(k) ? k : JSON.stringify(k);
}

function blockable(s) {
  if (!s.includes("\n") || s.includes("\r") || UNBLOCKABLE.test(s)) return false;
  const lines = s.split("\n");
  if (lines[0] === "" || lines[0].startsWith(" ") || lines[0].startsWith("\t")) return false;
  // A line of only blanks would be read back as an empty one.
  return !lines.some((l) => l !== "" && l.trim() === "");
}

function scalar(v) {
  if (v === null) return "null";
  if (v === true) return "true";
  if (v === false) return "false";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`${v} cannot be written in a workflow`);
    return String(v);
  }
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "string") return JSON.stringify(v);
  throw new TypeError(`cannot write a ${typeof v} in a workflow: ${String(v)}`);
}

function block(s, indent) {
  let chomp;
  let lines;
  if (!s.endsWith("\n")) {
    chomp = "-";
    lines = s.split("\n");
  } else if (s.endsWith("\n\n")) {
    chomp = "+";
    lines = s.split("\n").slice(0, -1);
  } else {
    chomp = "";
    lines = s.slice(0, -1).split("\n");
  }
  const pad = " ".repeat(indent);
  return `|${chomp}\n` + lines.map((l) => (l ? pad + l : "")).join("\n");
}

const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const nonEmpty = (v) => (Array.isArray(v) ? v.length > 0 : isMap(v) && Object.keys(definedEntries(v)).length > 0);

function definedEntries(obj) {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
}

function emit(v, indent, out) {
  const pad = " ".repeat(indent);
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    for (const x of v) out.push(item(pad + "-", x, indent));
    return null;
  }
  if (isMap(v)) {
    const entries = Object.entries(definedEntries(v));
    if (entries.length === 0) return "{}";
    for (const [k, x] of entries) out.push(item(pad + key(k) + ":", x, indent));
    return null;
  }
  return scalar(v);
}

function item(head, x, indent) {
  if (typeof x === "string" && blockable(x)) return `${head} ${block(x, indent + 2)}`;
  if ((Array.isArray(x) || isMap(x)) && nonEmpty(x)) {
    const sub = [];
    emit(x, indent + 2, sub);
    // `- key: value`: a mapping's first line shares the dash's.
    if (head.endsWith("-") && isMap(x)) return head + " " + sub.join("\n").slice(indent + 2);
    return head + "\n" + sub.join("\n");
  }
  return `${head} ${emit(x, indent, [])}`;
}

/** `value` (an object) as YAML text. */
export function dump(value) {
  if (!isMap(value)) throw new TypeError("a workflow configuration is an object");
  const out = [];
  emit(value, 0, out);
  return out.join("\n") + "\n";
}
