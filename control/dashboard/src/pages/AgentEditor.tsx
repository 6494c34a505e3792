// Create or edit an agent, every field of it; the API's 422 lands on the field it names.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import { api, ApiError, atLeast, ok } from "../api/client";
import { ErrorNote, Field, Loading, Page } from "../components/ui";
import { navigate } from "../router";
import { useSession } from "../session";
import { DraftError, draftOf, PIPELINE, specOf, withoutNulls, type Draft, type ProviderDraft, type Slot } from "./agentDraft";

const SLOT_NAMES: Record<Slot, string> = {
  llm: "Language model",
  llm_fallback: "Fallback language model",
  stt: "Speech to text",
  tts: "Text to speech",
};

/** `{{name}}` placeholders marked, so a misspelt one stands out. */
function Highlighted({ text, known }: { text: string; known: Set<string> }) {
  const parts = text.split(/(\{\{\s*[\w.]+\s*\}\})/g);
  if (parts.length === 1) return null;
  return (
    <div role="note" className="mt-1 text-xs whitespace-pre-wrap rounded bg-slate-50 dark:bg-slate-900 p-2" aria-label="Preview with variables marked">
      {parts.map((p, i) => {
        const name = /^\{\{\s*([\w.]+)\s*\}\}$/.exec(p)?.[1];
        if (!name) return <span key={i}>{p}</span>;
        return (
          <mark
            key={i}
            className={known.has(name) ? "bg-indigo-100 text-indigo-900 dark:bg-indigo-900 dark:text-indigo-100" : "bg-red-100 text-red-900 dark:bg-red-900 dark:text-red-100"}
            title={known.has(name) ? "a variable" : "no such variable"}
          >
            {p}
          </mark>
        );
      })}
    </div>
  );
}

function Fieldset({ legend, children }: { legend: string; children: ReactNode }) {
  return (
    <fieldset className="card mb-4">
      <legend className="px-1 font-semibold text-sm">{legend}</legend>
      {children}
    </fieldset>
  );
}

export function AgentEditor({ id }: { id: string | null }) {
  const { role } = useSession();
  const canEdit = atLeast(role, "editor");
  const queryClient = useQueryClient();
  const agent = useQuery({
    queryKey: ["agent", id],
    enabled: id != null,
    queryFn: async () => ok(await api.GET("/v1/agents/{id}", { params: { path: { id: id! } } })),
  });
  const [draft, setDraft] = useState<Draft>(() => draftOf());
  const [localError, setLocalError] = useState<DraftError | null>(null);
  useEffect(() => {
    if (agent.data) setDraft(draftOf(agent.data));
  }, [agent.data]);

  const save = useMutation({
    mutationFn: async (d: Draft) => {
      const spec = specOf(d);
      if (id == null) return ok(await api.POST("/v1/agents", { body: withoutNulls(spec) }));
      return ok(await api.PATCH("/v1/agents/{id}", { params: { path: { id } }, body: spec as never }));
    },
    onSuccess: async (saved) => {
      await queryClient.invalidateQueries({ queryKey: ["agents"] });
      queryClient.setQueryData(["agent", saved.id], saved);
      navigate(`/agents/${saved.id}`);
    },
  });

  if (id != null && agent.isPending) return <Loading what="the agent" />;
  if (agent.isError) return <ErrorNote error={agent.error} />;

  // Errors from the API, or found here first, both by field name.
  const apiError = save.error instanceof ApiError ? save.error : null;
  const error =
    localError != null
      ? new ApiError(422, { title: "Invalid", errors: [{ field: localError.field, message: localError.message }] })
      : apiError;
  const set = <K extends keyof Draft>(k: K, v: Draft[K]) => setDraft((d) => ({ ...d, [k]: v }));
  const setProvider = (slot: Slot, k: keyof ProviderDraft, v: string) =>
    setDraft((d) => ({ ...d, providers: { ...d.providers, [slot]: { ...d.providers[slot], [k]: v } } }));
  const known = new Set(["caller_number", "called_number", "call_id", ...draft.variables.split("\n").map((l) => l.split("=")[0].trim())]);

  function submit(e: FormEvent) {
    e.preventDefault();
    setLocalError(null);
    try {
      specOf(draft);
    } catch (err) {
      if (err instanceof DraftError) return setLocalError(err);
      throw err;
    }
    save.mutate(draft);
  }

  const input = (name: keyof Draft, label: string, opts: { type?: string; hint?: string } = {}) => (
    <Field label={label} name={name} error={error} hint={opts.hint}>
      {(p) => (
        <input {...p} type={opts.type ?? "text"} className="input" value={String(draft[name])} readOnly={!canEdit} onChange={(e) => set(name, e.target.value as never)} />
      )}
    </Field>
  );
  const area = (name: keyof Draft, label: string, hint?: string, rows = 3) => (
    <Field label={label} name={name} error={error} hint={hint}>
      {(p) => (
        <textarea {...p} rows={rows} className="input font-mono" value={String(draft[name])} readOnly={!canEdit} onChange={(e) => set(name, e.target.value as never)} />
      )}
    </Field>
  );

  return (
    <Page title={id == null ? "New agent" : `Agent ${agent.data?.name ?? ""}`}>
      {!canEdit && <p className="text-sm text-muted mb-3">You can read this agent; your role ({role}) cannot change it.</p>}
      <form onSubmit={submit} noValidate aria-label="Agent" className="max-w-3xl">
        {error && (
          <ErrorNote error={localError ? new Error(`${localError.field} ${localError.message}`) : apiError} />
        )}
        <Fieldset legend="Conversation">
          {input("name", "Name")}
          {area("system_prompt", "System prompt", "{{name}} is replaced by a variable for each call.", 6)}
          <Highlighted text={draft.system_prompt} known={known} />
          {area("first_message", "First message", undefined, 2)}
          <Highlighted text={draft.first_message} known={known} />
          {area("variables", "Variables", "One name=value a line; caller_number, called_number and call_id are built in.")}
          {input("language", "Language", { hint: "A BCP 47 tag; en when empty." })}
          {area("end_call_phrases", "End-call phrases", "One a line: the agent hangs up after saying one.")}
          {area("transfer_destinations", "Transfer destinations", "One phone number or sip: URI a line.")}
        </Fieldset>
        <Fieldset legend="Call">
          {input("max_call_seconds", "Longest call (seconds)", { type: "number", hint: "900 when empty." })}
          {input("silence_reprompt_seconds", "Reprompt after silence (seconds)", { type: "number" })}
          <div className="mb-3 flex items-center gap-2">
            <input id="field-record" type="checkbox" checked={draft.record} disabled={!canEdit} onChange={(e) => set("record", e.target.checked)} />
            <label htmlFor="field-record" className="text-sm">
              Record calls
            </label>
          </div>
        </Fieldset>
        <Fieldset legend="Turn taking">
          <Field label="Barge-in" name="turn.barge_in" error={error}>
            {(p) => (
              <select {...p} className="input" value={draft.barge_in} disabled={!canEdit} onChange={(e) => set("barge_in", e.target.value as Draft["barge_in"])}>
                <option value="">Default</option>
                <option value="true">On: the caller may interrupt</option>
                <option value="false">Off</option>
              </select>
            )}
          </Field>
          <Field label="Least speech to barge in (ms)" name="turn.barge_in_min_speech_ms" error={error}>
            {(p) => <input {...p} type="number" className="input" value={draft.barge_in_min_speech_ms} readOnly={!canEdit} onChange={(e) => set("barge_in_min_speech_ms", e.target.value)} />}
          </Field>
          <Field label="Silence that ends a turn (ms)" name="turn.end_of_turn_silence_ms" error={error}>
            {(p) => <input {...p} type="number" className="input" value={draft.end_of_turn_silence_ms} readOnly={!canEdit} onChange={(e) => set("end_of_turn_silence_ms", e.target.value)} />}
          </Field>
          <div className="mb-3 flex items-center gap-2">
            <input id="field-stt-endpointing" type="checkbox" checked={draft.stt_endpointing} disabled={!canEdit} onChange={(e) => set("stt_endpointing", e.target.checked)} />
            <label htmlFor="field-stt-endpointing" className="text-sm">
              Let the recogniser end the turn (Deepgram only)
            </label>
          </div>
        </Fieldset>
        {PIPELINE.map((slot) => {
          const p = draft.providers[slot];
          const sub = (k: keyof ProviderDraft, label: string, type = "text", hint?: string) => (
            <Field label={label} name={`${slot}.${k}`} error={error} hint={hint}>
              {(props) => (
                <input {...props} type={type} className="input" value={String(p[k])} readOnly={!canEdit} onChange={(e) => setProvider(slot, k, e.target.value)} autoComplete={type === "password" ? "new-password" : undefined} />
              )}
            </Field>
          );
          return (
            <Fieldset key={slot} legend={SLOT_NAMES[slot]}>
              <div className="grid md:grid-cols-2 gap-x-4">
                {sub("provider", "Provider", "text", "openai, anthropic, rules, deepgram, local, elevenlabs or espeak; empty for none.")}
                {sub("model", "Model")}
                {sub("voice", "Voice")}
                {sub("base_url", "Base URL")}
                {sub("api_key", "API key", "password", p.hasKey ? "A key is stored; it is never shown. Type to replace it." : "Write-only: never shown again.")}
                {sub("temperature", "Temperature", "number")}
                {sub("max_tokens", "Max tokens", "number")}
                {sub("timeout_ms", "Timeout (ms)", "number")}
              </div>
            </Fieldset>
          );
        })}
        <Fieldset legend="Tools and rules">
          <Field label="Tool secret" name="tool_secret" error={error} hint={draft.hasToolSecret ? "A secret is stored; type to replace it." : "Signs tool requests; required with tools."}>
            {(p) => <input {...p} type="password" autoComplete="new-password" className="input" value={draft.tool_secret} readOnly={!canEdit} onChange={(e) => set("tool_secret", e.target.value)} />}
          </Field>
          {area("tools", "Tools (JSON)", '[{"name": "...", "url": "https://...", "description": "...", "parameters": {...}}]', 5)}
          {area("rules", "Rules (JSON)", 'The offline replier: {"rules": [{"intent", "keywords", "reply"}], "fallback": "..."}', 6)}
        </Fieldset>
        {canEdit && (
          <button type="submit" className="btn-primary" disabled={save.isPending}>
            {save.isPending ? "Saving…" : id == null ? "Create agent" : "Save agent"}
          </button>
        )}
      </form>
      {id != null && <TestCall agentId={id} />}
    </Page>
  );
}

/** How to call this agent from a terminal: the number that reaches it and an edge's address. */
function TestCall({ agentId }: { agentId: string }) {
  const numbers = useQuery({
    queryKey: ["numbers"],
    queryFn: async () => ok(await api.GET("/v1/phone-numbers", { params: { query: { limit: 500 } } })),
  });
  const edges = useQuery({ queryKey: ["edges"], queryFn: async () => ok(await api.GET("/v1/edges")) });
  const number = numbers.data?.data.find((n) => n.agent_id === agentId);
  const edge = edges.data?.find((e) => e.status === "online") ?? edges.data?.[0];
  return (
    <section aria-labelledby="test-call" className="mt-8 max-w-3xl">
      <h2 id="test-call">Test call</h2>
      {!number ? (
        <p className="text-sm text-muted">No number answers with this agent yet: give it one under Numbers, then call that number.</p>
      ) : (
        <>
          <p className="text-sm mb-2">Call it from a terminal with Freya's own caller (it speaks with espeak-ng):</p>
          <pre className="card overflow-x-auto text-xs">
            <code>{`freya call sip:${number.number}@${edge?.sip_addr ?? "EDGE_ADDRESS"} --say "Hello, what are your opening hours?"`}</code>
          </pre>
        </>
      )}
    </section>
  );
}
