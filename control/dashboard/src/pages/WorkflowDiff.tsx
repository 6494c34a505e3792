// What changed between two published versions of a workflow, read as a person reads a review:
// nodes added and removed, each changed field with its value before and after, links (the
// graph's edges) added and removed. Moving a node on the canvas is not a change.
import { useState } from "react";
import type { Schemas } from "../api/client";
import { diffWorkflows, type WfNode } from "../workflow";

type Version = Schemas["WorkflowVersionView"];

function Value({ v }: { v: string | null }) {
  return v == null ? <span className="text-muted">(none)</span> : <code className="text-xs break-all whitespace-pre-wrap">{v}</code>;
}

function NodeList({ title, nodes, sign }: { title: string; nodes: WfNode[]; sign: "+" | "−" }) {
  if (nodes.length === 0) return null;
  return (
    <>
      <h3 className="text-sm font-semibold mt-3">{title}</h3>
      <ul className="text-sm">
        {nodes.map((n) => (
          <li key={n.id} className={sign === "+" ? "text-green-800 dark:text-green-300" : "text-red-800 dark:text-red-300"}>
            {sign} <span className="font-medium">{n.id}</span> ({n.type})
          </li>
        ))}
      </ul>
    </>
  );
}

/** Two version pickers (the one before the latest and the latest to begin with) and their diff. */
export function WorkflowDiff({ versions }: { versions: Version[] }) {
  const sorted = [...versions].sort((a, b) => a.version - b.version);
  const latest = sorted[sorted.length - 1]?.version ?? 0;
  const [from, setFrom] = useState(sorted[sorted.length - 2]?.version ?? latest);
  const [to, setTo] = useState(latest);
  const a = sorted.find((v) => v.version === from);
  const b = sorted.find((v) => v.version === to);
  if (sorted.length < 2) return null;
  const diff = a && b ? diffWorkflows(a.definition, b.definition) : null;
  const same = diff && !diff.addedNodes.length && !diff.removedNodes.length && !diff.changed.length && !diff.addedLinks.length && !diff.removedLinks.length;
  const picker = (label: string, id: string, value: number, set: (v: number) => void) => (
    <span className="flex items-center gap-1 text-sm">
      <label htmlFor={id}>{label}</label>
      <select id={id} className="input !inline-block w-20" value={value} onChange={(e) => set(Number(e.target.value))}>
        {sorted.map((v) => (
          <option key={v.version} value={v.version}>
            {v.version}
          </option>
        ))}
      </select>
    </span>
  );
  return (
    <section className="mt-3" aria-label={`Changes from version ${from} to version ${to}`}>
      <div className="flex flex-wrap gap-3 items-center">
        {picker("Compare version", `diff-from-${sorted[0]?.workflow_id}`, from, setFrom)}
        {picker("with version", `diff-to-${sorted[0]?.workflow_id}`, to, setTo)}
      </div>
      {same && <p className="text-sm text-muted mt-2">No differences.</p>}
      {diff && !same && (
        <>
          <NodeList title="Nodes added" nodes={diff.addedNodes} sign="+" />
          <NodeList title="Nodes removed" nodes={diff.removedNodes} sign="−" />
          {diff.changed.length > 0 && (
            <table className="table mt-3">
              <caption className="text-left text-sm font-semibold mb-1">Fields changed</caption>
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  <th scope="col">Field</th>
                  <th scope="col">Version {from}</th>
                  <th scope="col">Version {to}</th>
                </tr>
              </thead>
              <tbody>
                {diff.changed.map((c) => (
                  <tr key={`${c.node}/${c.field}`}>
                    <td>{c.node ?? <span className="text-muted">(workflow)</span>}</td>
                    <td>
                      <code className="text-xs">{c.field}</code>
                    </td>
                    <td className="bg-red-50 dark:bg-red-950">
                      <Value v={c.before} />
                    </td>
                    <td className="bg-green-50 dark:bg-green-950">
                      <Value v={c.after} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {(diff.addedLinks.length > 0 || diff.removedLinks.length > 0) && (
            <>
              <h3 className="text-sm font-semibold mt-3">Links</h3>
              <ul className="text-sm font-mono">
                {diff.removedLinks.map((l) => (
                  <li key={`-${l}`} className="text-red-800 dark:text-red-300">
                    − {l}
                  </li>
                ))}
                {diff.addedLinks.map((l) => (
                  <li key={`+${l}`} className="text-green-800 dark:text-green-300">
                    + {l}
                  </li>
                ))}
              </ul>
            </>
          )}
        </>
      )}
    </section>
  );
}
