// Phone numbers: which agent or workflow answers each, and in which regions.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, ApiError, atLeast, ok, type Schemas } from "../api/client";
import { useAgentNames } from "../calls";
import { ErrorNote, Field, Loading, Page } from "../components/ui";
import { useSession } from "../session";

type NumberView = Schemas["PhoneNumberView"];

/** The workspace's workflows by id, named as their editor names them. */
function useWorkflowNames(): Map<string, string> {
  const workflows = useQuery({
    queryKey: ["workflows"],
    queryFn: async () => ok(await api.GET("/v1/workflows", { params: { query: { limit: 500 } } })),
  });
  return new Map((workflows.data?.data ?? []).map((w) => [w.id, w.name]));
}

function NumberForm({ editing, onDone }: { editing: NumberView | null; onDone: () => void }) {
  const names = useAgentNames();
  const workflows = useWorkflowNames();
  const queryClient = useQueryClient();
  const save = useMutation({
    mutationFn: async (spec: Schemas["PhoneNumberSpec"]) =>
      editing
        ? ok(await api.PATCH("/v1/phone-numbers/{id}", { params: { path: { id: editing.id } }, body: spec as never }))
        : ok(await api.POST("/v1/phone-numbers", { body: spec })),
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: ["numbers"] });
      onDone();
    },
  });
  const error = save.error instanceof ApiError ? save.error : null;

  function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const answer = String(f.get("answer") ?? "");
    const regions = String(f.get("regions") ?? "")
      .split(",")
      .map((r) => r.trim())
      .filter(Boolean);
    save.mutate({
      number: String(f.get("number") ?? "").trim(),
      agent_id: answer.startsWith("agent:") ? answer.slice(6) : null,
      workflow_id: answer.startsWith("workflow:") ? answer.slice(9) : null,
      region: String(f.get("region") ?? "").trim() || null,
      regions: regions.length ? regions : null,
    });
  }

  const current = editing?.agent_id ? `agent:${editing.agent_id}` : editing?.workflow_id ? `workflow:${editing.workflow_id}` : "";
  return (
    <form onSubmit={submit} className="card mb-4 max-w-xl" aria-label={editing ? "Edit number" : "New number"}>
      <ErrorNote error={save.error && !error?.problem.errors?.length ? save.error : null} />
      <Field label="Number" name="number" error={error} hint="E.164 (+15551234567) or a SIP user part.">
        {(p) => <input {...p} name="number" className="input" defaultValue={editing?.number ?? ""} required />}
      </Field>
      <Field label="Answered by" name="agent_id" error={error}>
        {(p) => (
          <select {...p} name="answer" className="input" defaultValue={current}>
            <option value="">Choose…</option>
            {[...names].map(([id, name]) => (
              <option key={id} value={`agent:${id}`}>
                Agent: {name}
              </option>
            ))}
            {[...workflows].map(([id, name]) => (
              <option key={id} value={`workflow:${id}`}>
                Workflow: {name}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Home region" name="region" error={error} hint="Empty: every region answers.">
        {(p) => <input {...p} name="region" className="input" defaultValue={editing?.region ?? ""} />}
      </Field>
      <Field label="Further regions" name="regions" error={error} hint="Comma-separated.">
        {(p) => <input {...p} name="regions" className="input" defaultValue={(editing?.regions ?? []).join(", ")} />}
      </Field>
      <div className="flex gap-2">
        <button type="submit" className="btn-primary" disabled={save.isPending}>
          {editing ? "Save number" : "Add number"}
        </button>
        <button type="button" className="btn" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function Numbers() {
  const { role } = useSession();
  const names = useAgentNames();
  const workflows = useWorkflowNames();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState<NumberView | "new" | null>(null);
  const numbers = useQuery({
    queryKey: ["numbers"],
    queryFn: async () => ok(await api.GET("/v1/phone-numbers", { params: { query: { limit: 500 } } })),
  });
  const remove = useMutation({
    mutationFn: async (id: string) => ok(await api.DELETE("/v1/phone-numbers/{id}", { params: { path: { id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["numbers"] }),
  });
  const canEdit = atLeast(role, "editor");
  return (
    <Page
      title="Numbers"
      actions={
        canEdit && (
          <button className="btn-primary" onClick={() => setEditing("new")}>
            New number
          </button>
        )
      }
    >
      {editing && <NumberForm key={editing === "new" ? "new" : editing.id} editing={editing === "new" ? null : editing} onDone={() => setEditing(null)} />}
      <ErrorNote error={numbers.error ?? remove.error} />
      {numbers.isPending ? (
        <Loading what="numbers" />
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Number</th>
              <th scope="col">Answered by</th>
              <th scope="col">Regions</th>
              {canEdit && <th scope="col">Change</th>}
            </tr>
          </thead>
          <tbody>
            {numbers.data?.data.map((n) => (
              <tr key={n.id}>
                <td className="font-mono">
                  {n.number}
                  {n.conflict && <span className="badge ml-2">conflict: {n.conflict}</span>}
                </td>
                <td>{n.agent_id ? `Agent: ${names.get(n.agent_id) ?? n.agent_id}` : n.workflow_id ? `Workflow: ${workflows.get(n.workflow_id) ?? n.workflow_id}` : "—"}</td>
                <td>{n.region ? [n.region, ...(n.regions ?? [])].join(", ") : "all"}</td>
                {canEdit && (
                  <td className="flex gap-2">
                    <button className="btn" aria-label={`Edit ${n.number}`} onClick={() => setEditing(n)}>
                      Edit
                    </button>
                    <button className="btn-danger" aria-label={`Delete ${n.number}`} onClick={() => confirm(`Delete ${n.number}?`) && remove.mutate(n.id)}>
                      Delete
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}
