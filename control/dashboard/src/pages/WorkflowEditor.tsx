// The visual workflow editor (@xyflow/react, loaded only when opened): the graph of a
// workflow's nodes, a node inspector (the node's JSON), connections drawn by dragging, the
// API's validation shown on the node it names, saving the draft and publishing it.
import "@xyflow/react/dist/style.css";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { applyNodeChanges, Background, Controls, Handle, Position, ReactFlow, type Connection, type Edge, type Node, type NodeProps } from "@xyflow/react";
import { useEffect, useMemo, useState } from "react";
import { api, ApiError, atLeast, ok, type Schemas } from "../api/client";
import { ErrorNote, Loading, Page } from "../components/ui";
import { navigate } from "../router";
import { useSession } from "../session";

type Doc = Schemas["Workflow"];
type WfNode = { id: string; type: string; [k: string]: unknown };
type NodeData = { node: WfNode; start: boolean; errors: string[] };

/** Every node another one leads to, with the field that says so. */
export function targets(node: WfNode): [string, string][] {
  const out: [string, string][] = [];
  for (const field of ["next", "no_input", "else", "on_error"]) {
    if (typeof node[field] === "string") out.push([field, node[field] as string]);
  }
  for (const list of ["branches", "exits"]) {
    const items = node[list];
    if (Array.isArray(items)) items.forEach((b, i) => typeof b?.next === "string" && out.push([`${list}[${i}]`, b.next]));
  }
  return out;
}

/** Layers from the start node, left to right, for a first layout. */
function layout(doc: Doc): Map<string, { x: number; y: number }> {
  const nodes = doc.nodes as WfNode[];
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
  const at = new Map<string, { x: number; y: number }>();
  for (const n of nodes) {
    const d = depth.get(n.id) ?? 0;
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    at.set(n.id, { x: d * 240, y: row * 120 });
  }
  return at;
}

function FlowNode({ data, selected }: NodeProps<Node<NodeData>>) {
  const bad = data.errors.length > 0;
  return (
    <div
      className={`rounded-md border-2 bg-white dark:bg-slate-900 px-3 py-2 text-xs w-48 ${bad ? "border-red-600" : selected ? "border-indigo-600" : "border-slate-300 dark:border-slate-700"}`}
      data-node={data.node.id}
    >
      <Handle type="target" position={Position.Left} />
      <div className="font-semibold">
        {data.node.id} {data.start && <span className="badge">start</span>}
      </div>
      <div className="text-muted">{data.node.type}</div>
      {data.errors.map((e, i) => (
        <div key={i} role="alert" className="field-error !text-xs">
          {e}
        </div>
      ))}
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

const NODE_TYPES = { flow: FlowNode };
const TEMPLATES: Record<string, (id: string) => WfNode> = {
  say: (id) => ({ id, type: "say", text: "Hello!", next: null as unknown as string }),
  end: (id) => ({ id, type: "end", text: "Goodbye." }),
  gather: (id) => ({ id, type: "gather", input: "speech", save_as: "answer", next: null as unknown as string }),
};

const EMPTY: Doc = { name: "New workflow", start: "hello", nodes: [{ id: "hello", type: "say", text: "Hello!", next: "bye" }, { id: "bye", type: "end", text: "Goodbye." }] };

function clean(n: WfNode): WfNode {
  return Object.fromEntries(Object.entries(n).filter(([, v]) => v !== null)) as WfNode;
}

export default function WorkflowEditor({ id }: { id: string | null }) {
  const { role } = useSession();
  const canEdit = atLeast(role, "editor");
  const queryClient = useQueryClient();
  const stored = useQuery({
    queryKey: ["workflow", id],
    enabled: id != null,
    queryFn: async () => ok(await api.GET("/v1/workflows/{id}", { params: { path: { id: id! } } })),
  });
  const [doc, setDoc] = useState<Doc | null>(id == null ? EMPTY : null);
  const [positions, setPositions] = useState<Map<string, { x: number; y: number }>>(() => layout(EMPTY));
  const [selected, setSelected] = useState<string | null>(null);
  const [text, setText] = useState("");
  const [textError, setTextError] = useState<string | null>(null);
  const [problems, setProblems] = useState<Schemas["WorkflowError"][]>([]);
  const [validated, setValidated] = useState(false);

  useEffect(() => {
    if (stored.data) {
      const { name, start, nodes, variables, voice } = stored.data;
      const d: Doc = { name, start, nodes, variables, voice };
      setDoc(d);
      setPositions(layout(d));
    }
  }, [stored.data]);

  const nodes = (doc?.nodes ?? []) as WfNode[];
  useEffect(() => {
    const n = nodes.find((x) => x.id === selected);
    setText(n ? JSON.stringify(n, null, 2) : "");
    setTextError(null);
  }, [selected, doc]);

  const flowNodes: Node<NodeData>[] = useMemo(
    () =>
      nodes.map((n) => ({
        id: n.id,
        type: "flow",
        position: positions.get(n.id) ?? { x: 0, y: 0 },
        selected: n.id === selected,
        data: { node: n, start: n.id === doc?.start, errors: problems.filter((p) => p.node === n.id).map((p) => `${p.field}: ${p.message}`) },
      })),
    [nodes, positions, selected, doc, problems],
  );
  // xyflow measures each node before it shows it: its own copy of the nodes keeps those
  // measurements and the positions dragged to, ours brings the content.
  const [rfNodes, setRfNodes] = useState<Node<NodeData>[]>([]);
  useEffect(() => {
    setRfNodes((prev) =>
      flowNodes.map((n) => {
        const seen = prev.find((p) => p.id === n.id);
        return seen ? { ...seen, data: n.data, selected: n.selected } : n;
      }),
    );
  }, [flowNodes]);
  const flowEdges: Edge[] = useMemo(
    () => nodes.flatMap((n) => targets(n).map(([field, t]) => ({ id: `${n.id}-${field}`, source: n.id, target: t, label: field === "next" ? undefined : field }))),
    [nodes],
  );

  const problemsOf = (e: unknown) => {
    if (e instanceof ApiError && e.status === 422) {
      setProblems((e.problem.errors ?? []) as Schemas["WorkflowError"][]);
      return true;
    }
    return false;
  };
  const validate = useMutation({
    mutationFn: async (d: Doc) => ok(await api.POST("/v1/workflows/validate", { body: d })),
    onMutate: () => setValidated(false),
    onSuccess: () => {
      setProblems([]);
      setValidated(true);
    },
    onError: problemsOf,
  });
  const save = useMutation({
    mutationFn: async (d: Doc) =>
      id == null
        ? ok(await api.POST("/v1/workflows", { body: d }))
        : ok(await api.PATCH("/v1/workflows/{id}", { params: { path: { id } }, body: d as never })),
    onSuccess: (w) => {
      setProblems([]);
      void queryClient.invalidateQueries({ queryKey: ["workflows"] });
      queryClient.setQueryData(["workflow", w.id], w);
      if (id == null) navigate(`/workflows/${w.id}`);
    },
    onError: problemsOf,
  });
  const publish = useMutation({
    mutationFn: async () => ok(await api.POST("/v1/workflows/{id}/publish", { params: { path: { id: id! } } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["workflows"] });
      void queryClient.invalidateQueries({ queryKey: ["workflow", id] });
      void queryClient.invalidateQueries({ queryKey: ["workflow-versions", id] });
    },
    onError: problemsOf,
  });

  if (id != null && stored.isPending) return <Loading what="the workflow" />;
  if (stored.isError) return <ErrorNote error={stored.error} />;
  if (!doc) return null;

  const update = (d: Doc) => {
    setDoc(d);
    setValidated(false);
  };
  function connect(c: Connection) {
    if (!canEdit || !c.source || !c.target || !doc) return;
    update({ ...doc, nodes: nodes.map((n) => (n.id === c.source ? { ...n, next: c.target } : n)) });
  }
  function addNode(kind: string) {
    if (!doc) return;
    let i = nodes.length + 1;
    while (nodes.some((n) => n.id === `${kind}${i}`)) i++;
    const node = clean(TEMPLATES[kind](`${kind}${i}`));
    setPositions(new Map(positions).set(node.id, { x: 120 + 40 * i, y: 300 }));
    update({ ...doc, nodes: [...nodes, node] });
    setSelected(node.id);
  }
  function applyNode() {
    if (!doc || !selected) return;
    try {
      const parsed = JSON.parse(text) as WfNode;
      if (typeof parsed.id !== "string" || typeof parsed.type !== "string") throw new Error("a node needs an id and a type");
      const renamed = parsed.id !== selected;
      update({
        ...doc,
        start: renamed && doc.start === selected ? parsed.id : doc.start,
        nodes: nodes.map((n) => (n.id === selected ? parsed : n)),
      });
      if (renamed) {
        const at = rfNodes.find((n) => n.id === selected)?.position ?? { x: 0, y: 0 };
        setPositions(new Map(positions).set(parsed.id, at));
        setSelected(parsed.id);
      }
    } catch (e) {
      setTextError((e as Error).message);
    }
  }
  function removeNode() {
    if (!doc || !selected) return;
    update({ ...doc, nodes: nodes.filter((n) => n.id !== selected) });
    setSelected(null);
  }
  const docProblems = problems.filter((p) => !p.node);
  const otherError = [save.error, publish.error, validate.error].find((e) => e && !(e instanceof ApiError && e.status === 422));

  return (
    <Page title={id == null ? "New workflow" : `Workflow ${doc.name}`}>
      <div className="flex flex-wrap items-end gap-3 mb-3">
        <div>
          <label className="label" htmlFor="wf-name">
            Workflow name
          </label>
          <input id="wf-name" className="input w-56" value={doc.name} readOnly={!canEdit} onChange={(e) => update({ ...doc, name: e.target.value })} />
        </div>
        <div>
          <label className="label" htmlFor="wf-start">
            Start node
          </label>
          <select id="wf-start" className="input w-40" value={doc.start} disabled={!canEdit} onChange={(e) => update({ ...doc, start: e.target.value })}>
            {nodes.map((n) => (
              <option key={n.id}>{n.id}</option>
            ))}
          </select>
        </div>
        {canEdit && (
          <>
            {Object.keys(TEMPLATES).map((k) => (
              <button key={k} className="btn" onClick={() => addNode(k)}>
                Add {k}
              </button>
            ))}
            <button className="btn" onClick={() => validate.mutate(doc)} disabled={validate.isPending}>
              Validate
            </button>
            <button className="btn-primary" onClick={() => save.mutate(doc)} disabled={save.isPending}>
              {id == null ? "Create workflow" : "Save draft"}
            </button>
            {id != null && (
              <button className="btn-primary" onClick={() => publish.mutate()} disabled={publish.isPending}>
                Publish
              </button>
            )}
          </>
        )}
      </div>
      <ErrorNote error={otherError} />
      {docProblems.map((p, i) => (
        <p key={i} role="alert" className="field-error">
          {p.field}: {p.message}
        </p>
      ))}
      <div role="status" className="text-sm mb-2">
        {validated && "The workflow is valid."}
        {problems.length > 0 && `${problems.length} problem${problems.length === 1 ? "" : "s"}: see the nodes marked in red.`}
        {publish.isSuccess && ` Published as version ${publish.data.version}.`}
        {save.isSuccess && !publish.isSuccess && " Draft saved."}
      </div>
      <div className="grid lg:grid-cols-[1fr_20rem] gap-4">
        <div className="card !p-0 h-[28rem]" aria-label="Workflow graph" role="region">
          {/* Mounted once there are nodes, so `fitView` frames all of them. */}
          {rfNodes.length > 0 && (
          <ReactFlow
            nodes={rfNodes}
            edges={flowEdges}
            nodeTypes={NODE_TYPES}
            onNodeClick={(_, n) => setSelected(n.id)}
            onNodesChange={(changes) => setRfNodes((nodes) => applyNodeChanges(changes, nodes))}
            onConnect={connect}
            nodesConnectable={canEdit}
            fitView
            proOptions={{ hideAttribution: true }}
          >
            <Background />
            <Controls showInteractive={false} />
          </ReactFlow>
          )}
        </div>
        <aside aria-label="Node inspector" className="card">
          {selected == null ? (
            <p className="text-sm text-muted">Select a node to see and edit it.</p>
          ) : (
            <>
              <label htmlFor="wf-node" className="label">
                Node {selected} (JSON)
              </label>
              <textarea id="wf-node" rows={14} className="input font-mono text-xs" value={text} readOnly={!canEdit} onChange={(e) => setText(e.target.value)} />
              {textError && <p className="field-error">{textError}</p>}
              {canEdit && (
                <div className="flex gap-2 mt-2">
                  <button className="btn" onClick={applyNode}>
                    Apply
                  </button>
                  <button className="btn-danger" onClick={removeNode}>
                    Remove node
                  </button>
                </div>
              )}
            </>
          )}
        </aside>
      </div>
    </Page>
  );
}
