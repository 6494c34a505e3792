// A workflow document as the editor handles it: its nodes' links (the graph's edges), a first
// layout for nodes that have no stored position, renaming a node with every link to it, and
// the differences between two published versions, read field by field.
import type { Schemas } from "./api/client";

export type Doc = Schemas["Workflow"];
export type XY = { x: number; y: number };
/** A node of any type: `id`, `type`, its optional `position`, and its type's own fields. */
export type WfNode = { id: string; type: string; position?: XY; [k: string]: unknown };

/** The fields that lead from a node to another one, in the order the form shows them. */
const LINKS = ["next", "no_input", "else", "on_error"] as const;

/** Every node another one leads to, with the field that says so. */
export function targets(node: WfNode): [string, string][] {
  const out: [string, string][] = [];
  for (const field of LINKS) {
    if (typeof node[field] === "string") out.push([field, node[field] as string]);
  }
  for (const list of ["branches", "exits"]) {
    const items = node[list];
    if (Array.isArray(items)) items.forEach((b, i) => typeof b?.next === "string" && out.push([`${list}[${i}]`, b.next]));
  }
  return out;
}

export function nodesOf(doc: Doc): WfNode[] {
  return doc.nodes as WfNode[];
}

/** Layers from the start node, left to right: where a node without a stored position goes. */
export function layout(doc: Doc): Map<string, XY> {
  const nodes = nodesOf(doc);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map<string, number>([[doc.start, 0]]);
  const queue = [doc.start];
  while (queue.length) {
    const id = queue.shift()!;
    const n = byId.get(id);
    if (!n) continue;
    for (const [, t] of targets(n)) {
      if (!depth.has(t)) {
        depth.set(t, depth.get(id)! + 1);
        queue.push(t);
      }
    }
  }
  const rows = new Map<number, number>();
  const at = new Map<string, XY>();
  for (const n of nodes) {
    const d = depth.get(n.id) ?? 0;
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    at.set(n.id, n.position ?? { x: d * 240, y: row * 120 });
  }
  return at;
}

/** The document with node `from` called `to`: the start and every link to it follow. */
export function renameNode(doc: Doc, from: string, to: string): Doc {
  const follow = (v: unknown) => (v === from ? to : v);
  const nodes = nodesOf(doc).map((n) => {
    const out: WfNode = { ...n, id: n.id === from ? to : n.id };
    for (const f of LINKS) if (f in out) out[f] = follow(out[f]);
    for (const list of ["branches", "exits"]) {
      const items = out[list];
      if (Array.isArray(items)) out[list] = items.map((b) => ({ ...b, next: follow(b?.next) }));
    }
    return out;
  });
  return { ...doc, start: doc.start === from ? to : doc.start, nodes };
}

/** One field of one node (or of the document) that differs between two versions. */
export interface FieldChange {
  node: string | null;
  field: string;
  before: string | null;
  after: string | null;
}

/** What changed from one version to another: nodes and links added or removed, fields changed. */
export interface WorkflowDiff {
  addedNodes: WfNode[];
  removedNodes: WfNode[];
  changed: FieldChange[];
  addedLinks: string[];
  removedLinks: string[];
}

/** A value as the diff prints it; `null` when absent. */
function shown(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** A node's fields as dotted paths (`branches[0].when`), leaving out its id and its layout. */
function flatten(value: unknown, path: string, out: Map<string, unknown>) {
  if (Array.isArray(value)) {
    if (value.length === 0) out.set(path, value);
    value.forEach((v, i) => flatten(v, `${path}[${i}]`, out));
  } else if (value && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 0 && path) out.set(path, value);
    for (const [k, v] of entries) flatten(v, path ? `${path}.${k}` : k, out);
  } else out.set(path, value);
}

function fieldsOf(node: WfNode): Map<string, unknown> {
  const { id: _id, position: _position, ...rest } = node;
  const out = new Map<string, unknown>();
  flatten(rest, "", out);
  return out;
}

function linksOf(doc: Doc): Set<string> {
  return new Set(nodesOf(doc).flatMap((n) => targets(n).map(([field, t]) => `${n.id} —${field}→ ${t}`)));
}

/** The differences from `a` to `b`. Moving a node on the canvas is not a change. */
export function diffWorkflows(a: Doc, b: Doc): WorkflowDiff {
  const before = new Map(nodesOf(a).map((n) => [n.id, n]));
  const after = new Map(nodesOf(b).map((n) => [n.id, n]));
  const changed: FieldChange[] = [];
  for (const field of ["name", "start"] as const) {
    if (a[field] !== b[field]) changed.push({ node: null, field, before: shown(a[field]), after: shown(b[field]) });
  }
  const docFields = (d: Doc) => {
    const out = new Map<string, unknown>();
    flatten({ variables: d.variables ?? {}, voice: d.voice ?? null }, "", out);
    return out;
  };
  pushChanges(null, docFields(a), docFields(b), changed);
  for (const [id, n] of after) {
    const old = before.get(id);
    if (old) pushChanges(id, fieldsOf(old), fieldsOf(n), changed);
  }
  const la = linksOf(a);
  const lb = linksOf(b);
  return {
    addedNodes: [...after.values()].filter((n) => !before.has(n.id)),
    removedNodes: [...before.values()].filter((n) => !after.has(n.id)),
    changed,
    addedLinks: [...lb].filter((l) => !la.has(l)),
    removedLinks: [...la].filter((l) => !lb.has(l)),
  };
}

function pushChanges(node: string | null, a: Map<string, unknown>, b: Map<string, unknown>, out: FieldChange[]) {
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const k of keys) {
    const x = shown(a.get(k));
    const y = shown(b.get(k));
    if (x !== y) out.push({ node, field: k, before: x, after: y });
  }
}
