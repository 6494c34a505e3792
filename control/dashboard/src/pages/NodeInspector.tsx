// The node inspector of the workflow editor: a form for the selected node, with the fields of
// its type (say, gather, condition, agent, function, set, transfer, end), links chosen among
// the workflow's nodes, and each problem `/v1/workflows/validate` names shown under the field
// it names (`branches[0].when` under that branch's condition).
import { useEffect, useState, type ReactNode } from "react";
import type { Schemas } from "../api/client";
import type { WfNode } from "../workflow";

type Problem = Schemas["WorkflowError"];

interface Props {
  node: WfNode;
  nodeIds: string[];
  agents: Map<string, string>;
  problems: Problem[];
  canEdit: boolean;
  onChange: (node: WfNode) => void;
  onRename: (id: string) => void;
  onRemove: () => void;
}

/** The problems of field `name`: itself and what is inside it (`assign.x`, `body.a`). */
function problemsOf(problems: Problem[], name: string): string[] {
  return problems
    .filter((p) => p.field === name || p.field.startsWith(`${name}.`) || (name === "body" && p.field.startsWith("body[")))
    .map((p) => (p.field === name ? p.message : `${p.field.slice(name.length + 1)}: ${p.message}`));
}

export function NodeInspector({ node, nodeIds, agents, problems, canEdit, onChange, onRename, onRemove }: Props) {
  const [id, setId] = useState(node.id);
  useEffect(() => setId(node.id), [node.id]);
  const set = (field: string, value: unknown) => {
    const next: WfNode = { ...node };
    if (value === undefined || value === "" || value === null) delete next[field];
    else next[field] = value;
    onChange(next);
  };
  const str = (field: string) => (typeof node[field] === "string" ? (node[field] as string) : "");
  const num = (field: string) => (typeof node[field] === "number" ? String(node[field]) : "");

  /** A labelled control with its problems under it, named `node-<field>` for its label. */
  const field = (label: string, name: string, control: (p: { id: string; "aria-invalid"?: boolean; "aria-describedby"?: string; readOnly?: boolean; disabled?: boolean }) => ReactNode, hint?: string) => {
    const fid = `node-${name.replace(/[^a-z0-9_-]/gi, "-")}`;
    const messages = problemsOf(problems, name);
    const describedBy = [messages.length ? `${fid}-error` : null, hint ? `${fid}-hint` : null].filter(Boolean).join(" ") || undefined;
    return (
      <div className="mb-3" key={name}>
        <label className="label" htmlFor={fid}>
          {label}
        </label>
        {control({ id: fid, "aria-invalid": messages.length ? true : undefined, "aria-describedby": describedBy, readOnly: !canEdit, disabled: undefined })}
        {hint && (
          <p id={`${fid}-hint`} className="mt-1 text-xs text-muted">
            {hint}
          </p>
        )}
        {messages.length > 0 && (
          <p id={`${fid}-error`} className="field-error">
            {messages.join("; ")}
          </p>
        )}
      </div>
    );
  };
  const text = (label: string, name: string, hint?: string) =>
    field(label, name, (p) => <input {...p} className="input" value={str(name)} onChange={(e) => set(name, e.target.value)} />, hint);
  const area = (label: string, name: string, hint?: string) =>
    field(label, name, (p) => <textarea {...p} rows={3} className="input" value={str(name)} onChange={(e) => set(name, e.target.value)} />, hint);
  const number = (label: string, name: string, hint?: string) =>
    field(
      label,
      name,
      (p) => <input {...p} type="number" min={0} className="input" value={num(name)} onChange={(e) => set(name, e.target.value === "" ? undefined : Number(e.target.value))} />,
      hint,
    );
  const linkSelect = (value: string, onPick: (v: string | undefined) => void, p: object) => (
    <select {...p} className="input" value={value} disabled={!canEdit} onChange={(e) => onPick(e.target.value || undefined)}>
      <option value="">(none)</option>
      {nodeIds
        .filter((n) => n !== node.id || value === n)
        .map((n) => (
          <option key={n}>{n}</option>
        ))}
      {value && !nodeIds.includes(value) && <option value={value}>{value} (missing)</option>}
    </select>
  );
  const link = (label: string, name: string, hint?: string) => field(label, name, (p) => linkSelect(str(name), (v) => set(name, v), p), hint);

  /** `branches` of a condition or `exits` of an agent: a guard and a link each. */
  const guarded = (list: "branches" | "exits", guard: "when" | "when_caller", guardLabel: string) => {
    const items = (Array.isArray(node[list]) ? node[list] : []) as Record<string, unknown>[];
    const put = (i: number, k: string, v: unknown) =>
      set(
        list,
        items.map((b, j) => (j === i ? Object.fromEntries(Object.entries({ ...b, [k]: v }).filter(([, x]) => x !== undefined && x !== "")) : b)),
      );
    return (
      <fieldset className="mb-3 border border-slate-200 dark:border-slate-800 rounded p-2" key={list}>
        <legend className="text-sm font-medium px-1">{list === "branches" ? "Branches" : "Exits"}</legend>
        {problemsOf(problems, list).length > 0 && <p className="field-error">{problemsOf(problems, list).join("; ")}</p>}
        {items.map((b, i) => (
          <div key={i} className="mb-2">
            {field(`${guardLabel} ${i + 1}`, `${list}[${i}].${guard}`, (p) => (
              <input {...p} className="input font-mono text-xs" value={typeof b[guard] === "string" ? (b[guard] as string) : ""} onChange={(e) => put(i, guard, e.target.value)} />
            ))}
            {field(`Then go to (${i + 1})`, `${list}[${i}].next`, (p) => linkSelect(typeof b.next === "string" ? b.next : "", (v) => put(i, "next", v), p))}
            {canEdit && (
              <button type="button" className="btn-danger !text-xs" onClick={() => set(list, items.filter((_, j) => j !== i))}>
                Remove {list === "branches" ? "branch" : "exit"} {i + 1}
              </button>
            )}
          </div>
        ))}
        {canEdit && (
          <button type="button" className="btn !text-xs" onClick={() => set(list, [...items, { [guard]: "" }])}>
            Add {list === "branches" ? "branch" : "exit"}
          </button>
        )}
      </fieldset>
    );
  };

  /** A map of strings edited as `key = value` lines (`assign`) or `Name: value` lines (`headers`). */
  const pairs = (label: string, name: string, sep: "=" | ":", hint: string) => {
    const current = (node[name] && typeof node[name] === "object" ? node[name] : {}) as Record<string, string>;
    return field(
      label,
      name,
      (p) => (
        <PairsInput
          {...p}
          value={current}
          sep={sep}
          onChange={(v) => set(name, Object.keys(v).length ? v : name === "assign" ? {} : undefined)}
        />
      ),
      hint,
    );
  };

  const byType: Record<string, () => ReactNode[]> = {
    say: () => [area("Text", "text", "Said as written; {{variables}} are filled in."), area("Prompt", "prompt", "Or: the model writes the line from this."), link("Next", "next")],
    gather: () => [
      field("Input", "input", (p) => (
        <select
          {...p}
          className="input"
          disabled={!canEdit}
          value={JSON.stringify(Array.isArray(node.input) ? node.input : typeof node.input === "string" ? [node.input] : ["dtmf", "speech"])}
          onChange={(e) => set("input", JSON.parse(e.target.value))}
        >
          <option value='["dtmf","speech"]'>Keypad or speech</option>
          <option value='["dtmf"]'>Keypad only</option>
          <option value='["speech"]'>Speech only</option>
        </select>
      )),
      text("Save as", "save_as", "The variable that holds the answer."),
      number("Max digits", "max_digits"),
      number("Timeout (ms)", "timeout_ms"),
      number("Retries", "retries"),
      text("Reprompt", "reprompt"),
      field(
        "Sensitive",
        "sensitive",
        (p) => (
          <select {...p} className="input" disabled={!canEdit} value={node.sensitive === true ? "yes" : "no"} onChange={(e) => set("sensitive", e.target.value === "yes" ? true : undefined)}>
            <option value="no">No</option>
            <option value="yes">Yes: a card number or PIN</option>
          </select>
        ),
        "The answer still reaches the variable, but the call's record and logs show [redacted] and its key tones are silence in the recording.",
      ),
      link("Next", "next"),
      link("On no input", "no_input"),
    ],
    condition: () => [guarded("branches", "when", "Condition"), link("Else", "else")],
    agent: () => [
      field("Agent", "agent_id", (p) => (
        <select {...p} className="input" disabled={!canEdit} value={str("agent_id")} onChange={(e) => set("agent_id", e.target.value)}>
          <option value="">(choose an agent)</option>
          {[...agents].map(([aid, name]) => (
            <option key={aid} value={aid}>
              {name}
            </option>
          ))}
          {str("agent_id") && !agents.has(str("agent_id")) && <option value={str("agent_id")}>{str("agent_id")}</option>}
        </select>
      )),
      guarded("exits", "when_caller", "Leave when the caller"),
      number("Max turns", "max_turns"),
      link("Next", "next"),
    ],
    function: () => [
      text("URL", "url"),
      field("Method", "method", (p) => (
        <select {...p} className="input" disabled={!canEdit} value={str("method") || "POST"} onChange={(e) => set("method", e.target.value)}>
          {["GET", "POST", "PUT", "PATCH", "DELETE"].map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      )),
      pairs("Headers", "headers", ":", "One `Name: value` a line."),
      field("Body (JSON)", "body", (p) => <JsonInput {...p} value={node.body} onChange={(v) => set("body", v)} />),
      text("Save as", "save_as"),
      number("Timeout (ms)", "timeout_ms"),
      link("Next", "next"),
      link("On error", "on_error"),
    ],
    set: () => [pairs("Assign", "assign", "=", "One `variable = expression` a line."), link("Next", "next")],
    transfer: () => [
      text("Transfer to", "to", "A number or a sip: URI; {{variables}} are filled in."),
      field("Mode", "mode", (p) => (
        <select {...p} className="input" disabled={!canEdit} value={str("mode") || "blind"} onChange={(e) => set("mode", e.target.value === "blind" ? undefined : e.target.value)}>
          <option value="blind">Blind (hand the call over)</option>
          <option value="warm">Warm (tell the party a summary, then bridge)</option>
        </select>
      )),
      area("Summary (warm)", "summary"),
    ],
    end: () => [area("Last words", "text")],
  };

  const idProblems = problemsOf(problems, "id");
  return (
    <form aria-label={`Node ${node.id}`} onSubmit={(e) => e.preventDefault()}>
      <p className="text-sm mb-2">
        <span className="badge">{node.type}</span> node
      </p>
      <div className="mb-3">
        <label className="label" htmlFor="node-id">
          Node id
        </label>
        <input
          id="node-id"
          className="input"
          value={id}
          readOnly={!canEdit}
          aria-invalid={idProblems.length ? true : undefined}
          onChange={(e) => setId(e.target.value)}
          onBlur={() => id && id !== node.id && !nodeIds.includes(id) && onRename(id)}
        />
        {id !== node.id && nodeIds.includes(id) && <p className="field-error">Another node has this id.</p>}
        {idProblems.length > 0 && <p className="field-error">{idProblems.join("; ")}</p>}
      </div>
      {(byType[node.type] ?? (() => [<p key="x">Unknown node type.</p>]))()}
      {canEdit && (
        <button type="button" className="btn-danger" onClick={onRemove}>
          Remove node
        </button>
      )}
    </form>
  );
}

type InputProps = { id: string; readOnly?: boolean; "aria-invalid"?: boolean; "aria-describedby"?: string };

/** Lines of `key<sep>value`, kept as typed until they parse. */
function PairsInput({ value, sep, onChange, ...p }: InputProps & { value: Record<string, string>; sep: string; onChange: (v: Record<string, string>) => void }) {
  const [text, setText] = useState(() => Object.entries(value).map(([k, v]) => `${k} ${sep} ${v}`).join("\n"));
  return (
    <textarea
      {...p}
      rows={3}
      className="input font-mono text-xs"
      value={text}
      onChange={(e) => {
        setText(e.target.value);
        const out: Record<string, string> = {};
        for (const line of e.target.value.split("\n")) {
          const at = line.indexOf(sep);
          if (at > 0) out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
        }
        onChange(out);
      }}
    />
  );
}

/** JSON text, applied when it parses; an error under it until then. */
function JsonInput({ value, onChange, ...p }: InputProps & { value: unknown; onChange: (v: unknown) => void }) {
  const [text, setText] = useState(() => (value === undefined ? "" : JSON.stringify(value, null, 2)));
  const [bad, setBad] = useState<string | null>(null);
  return (
    <>
      <textarea
        {...p}
        rows={4}
        className="input font-mono text-xs"
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          if (e.target.value.trim() === "") {
            setBad(null);
            onChange(undefined);
            return;
          }
          try {
            onChange(JSON.parse(e.target.value));
            setBad(null);
          } catch (err) {
            setBad((err as Error).message);
          }
        }}
      />
      {bad && <p className="field-error">Not JSON yet: {bad}</p>}
    </>
  );
}
