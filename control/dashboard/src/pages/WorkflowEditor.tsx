// The visual workflow editor (@xyflow/react, loaded only when opened): the graph of a
// workflow's nodes where they were left (each node's `position`, saved with the draft), a node
// inspector with the form of the node's type (`NodeInspector.tsx`), connections drawn by
// dragging, the API's validation shown on the node and the field it names, saving the draft
// and publishing it.
import "@xyflow/react/dist/style.css";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { applyNodeChanges, Background, Controls, Handle, Position, ReactFlow, type Connection, type Edge, type Node, type NodeProps } from "@xyflow/react";
import { useEffect, useMemo, useState } from "react";
import { api, ApiError, atLeast, ok, type Schemas } from "../api/client";
import { useAgentNames } from "../calls";
import { ErrorNote, Loading, Page } from "../components/ui";
import { navigate } from "../router";
import { useSession } from "../session";
import { layout, renameNode, targets, type Doc, type WfNode, type XY } from "../workflow";
import { NodeInspector } from "./NodeInspector";

type NodeData = { node: WfNode; start: boolean; errors: string[] };

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
/** A new node of each type, with what its form needs filled in. */
const TEMPLATES: Record<string, (id: string) => WfNode> = {
  say: (id) => ({ id, type: "say", text: "Hello!" }),
  gather: (id) => ({ id, type: "gather", input: ["dtmf", "speech"], save_as: "answer" }),
  condition: (id) => ({ id, type: "condition", branches: [{ when: "answer == '1'" }] }),
  agent: (id) => ({ id, type: "agent", agent_id: "" }),
  function: (id) => ({ id, type: "function", url: "https://example.com/hook", method: "POST" }),
  set: (id) => ({ id, type: "set", assign: { greeted: "true" } }),
  transfer: (id) => ({ id, type: "transfer", to: "+15551234567" }),
  end: (id) => ({ id, type: "end", text: "Goodbye." }),
};

const EMPTY: Doc = { name: "New workflow", start: "hello", nodes: [{ id: "hello", type: "say", text: "Hello!", next: "bye" }, { id: "bye", type: "end", text: "Goodbye." }] };

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
  const [positions, setPositions] = useState<Map<string, XY>>(() => layout(EMPTY));
  const [selected, setSelected] = useState<string | null>(null);
  const [adding, setAdding] = useState("say");
  const agents = useAgentNames();
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
  /** The document with every node where the canvas shows it, so the layout is saved too. */
  const placed = (d: Doc): Doc => ({
    ...d,
    nodes: (d.nodes as WfNode[]).map((n) => {
      const at = rfNodes.find((r) => r.id === n.id)?.position ?? positions.get(n.id);
      return at ? { ...n, position: { x: Math.round(at.x), y: Math.round(at.y) } } : n;
    }),
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
    const link = (n: WfNode): WfNode => {
      if (n.type === "transfer" || n.type === "end") return n;
      if (n.type !== "condition") return { ...n, next: c.target };
      // A condition's first free way out: `else`, then a new branch to fill in.
      if (typeof n.else !== "string") return { ...n, else: c.target };
      return { ...n, branches: [...(Array.isArray(n.branches) ? n.branches : []), { when: "true", next: c.target }] };
    };
    update({ ...doc, nodes: nodes.map((n) => (n.id === c.source ? link(n) : n)) });
  }
  function addNode(kind: string) {
    if (!doc) return;
    let i = nodes.length + 1;
    while (nodes.some((n) => n.id === `${kind}${i}`)) i++;
    const node = TEMPLATES[kind](`${kind}${i}`);
    setPositions(new Map(positions).set(node.id, { x: 120 + 40 * i, y: 300 }));
    update({ ...doc, nodes: [...nodes, node] });
    setSelected(node.id);
  }
  function changeNode(node: WfNode) {
    if (!doc) return;
    update({ ...doc, nodes: nodes.map((n) => (n.id === node.id ? node : n)) });
  }
  function renameSelected(to: string) {
    if (!doc || !selected) return;
    const at = rfNodes.find((n) => n.id === selected)?.position ?? positions.get(selected) ?? { x: 0, y: 0 };
    setPositions(new Map(positions).set(to, at));
    setRfNodes((rf) => rf.map((n) => (n.id === selected ? { ...n, id: to } : n)));
    update(renameNode(doc, selected, to));
    setSelected(to);
  }
  /** A node dropped somewhere keeps that place in the document (saved with the draft). */
  function moved(id: string, at: XY) {
    if (!doc || !canEdit) return;
    const position = { x: Math.round(at.x), y: Math.round(at.y) };
    setDoc({ ...doc, nodes: nodes.map((n) => (n.id === id ? { ...n, position } : n)) });
  }
  function removeNode() {
    if (!doc || !selected) return;
    update({ ...doc, nodes: nodes.filter((n) => n.id !== selected) });
    setSelected(null);
  }
  const docProblems = problems.filter((p) => !p.node);
  const selectedNode = nodes.find((n) => n.id === selected) ?? null;
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
            <div className="flex items-end gap-1">
              <div>
                <label className="label" htmlFor="wf-add">
                  New node type
                </label>
                <select id="wf-add" className="input w-32" value={adding} onChange={(e) => setAdding(e.target.value)}>
                  {Object.keys(TEMPLATES).map((k) => (
                    <option key={k}>{k}</option>
                  ))}
                </select>
              </div>
              <button className="btn" onClick={() => addNode(adding)}>
                Add node
              </button>
            </div>
            <button className="btn" onClick={() => validate.mutate(placed(doc))} disabled={validate.isPending}>
              Validate
            </button>
            <button className="btn-primary" onClick={() => save.mutate(placed(doc))} disabled={save.isPending}>
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
            onNodeDragStop={(_, n) => moved(n.id, n.position)}
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
          {selectedNode == null ? (
            <p className="text-sm text-muted">Select a node to see and edit it.</p>
          ) : (
            <NodeInspector
              key={selectedNode.id}
              node={selectedNode}
              nodeIds={nodes.map((n) => n.id)}
              agents={agents}
              problems={problems.filter((p) => p.node === selectedNode.id)}
              canEdit={canEdit}
              onChange={changeNode}
              onRename={renameSelected}
              onRemove={removeNode}
            />
          )}
        </aside>
      </div>
    </Page>
  );
}
