// One call: its facts, the transcript as a chat (a line jumps the recording to it), the
// latency of each reply, the recording's waveform and the events timeline; hang up if live.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef } from "react";
import { api, ok } from "../api/client";
import { transcript, turnLatencies, useAgentNames, useCall } from "../calls";
import { callDuration, ErrorNote, IfRole, Loading, Page, time } from "../components/ui";
import { Waterfall } from "../components/Waterfall";
import { Waveform, type WaveformHandle } from "../components/Waveform";
import { Link } from "../router";

export function CallPage({ id }: { id: string }) {
  const call = useCall(id);
  const names = useAgentNames();
  const wave = useRef<WaveformHandle>(null);
  const queryClient = useQueryClient();
  const hangup = useMutation({
    mutationFn: async () => ok(await api.POST("/v1/calls/{id}/hangup", { params: { path: { id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["call", id] }),
  });

  if (call.isPending) return <Loading what="the call" />;
  if (call.isError)
    return (
      <Page title="Call">
        <ErrorNote error={call.error} />
      </Page>
    );
  const c = call.data;
  const lines = transcript(c);
  const live = !c.ended_at && c.status !== "failed";
  return (
    <Page
      title={`Call ${c.direction === "inbound" ? `from ${c.from ?? "?"}` : `to ${c.to ?? "?"}`}`}
      actions={
        live && (
          <IfRole least="editor">
            <button className="btn-danger" disabled={hangup.isPending} onClick={() => hangup.mutate()}>
              Hang up
            </button>
          </IfRole>
        )
      }
    >
      <p className="text-sm mb-4">
        <Link to="/calls">← All calls</Link>
      </p>
      <ErrorNote error={hangup.error} />
      {hangup.isSuccess && <p role="status" className="text-sm">The edge was told to hang up.</p>}
      <dl className="grid grid-cols-2 md:grid-cols-4 gap-3 text-sm">
        {[
          ["Status", live ? c.status : c.end_reason ?? c.status],
          ["Started", time(c.started_at)],
          ["Duration", callDuration(c)],
          ["Agent", c.agent_id ? names.get(c.agent_id) ?? c.agent_id : "—"],
          ["From", c.from ?? "—"],
          ["To", c.to ?? "—"],
          ["Region", c.region ?? "—"],
          ["Edge", c.edge_id ?? "—"],
        ].map(([k, v]) => (
          <div key={k} className="card !p-2">
            <dt className="text-muted">{k}</dt>
            <dd className="font-medium break-all">{v}</dd>
          </div>
        ))}
      </dl>

      <h2>Transcript</h2>
      {lines.length === 0 ? (
        <p className="text-muted text-sm">Nothing was said yet.</p>
      ) : (
        <ol className="flex flex-col gap-2 max-w-2xl" aria-label="Transcript">
          {lines.map((l, i) => {
            const agent = l.role === "agent";
            const text = (
              <>
                <span className="block text-xs text-muted">
                  {agent ? "Agent" : "Caller"}
                  {l.start_ms != null && ` · ${(l.start_ms / 1000).toFixed(1)} s`}
                  {l.interrupted && " · interrupted"}
                </span>
                {l.text}
              </>
            );
            const bubble = `rounded-lg px-3 py-2 text-sm text-left ${agent ? "bg-indigo-50 dark:bg-indigo-950" : "bg-slate-100 dark:bg-slate-900"}`;
            return (
              <li key={i} className={agent ? "self-start max-w-[80%]" : "self-end max-w-[80%]"}>
                {c.recording && l.start_ms != null ? (
                  <button className={`${bubble} cursor-pointer`} onClick={() => wave.current?.seekTo(l.start_ms! / 1000)}>
                    {text}
                  </button>
                ) : (
                  <div className={bubble}>{text}</div>
                )}
              </li>
            );
          })}
        </ol>
      )}

      <h2>Latency per reply</h2>
      <Waterfall turns={turnLatencies(c)} />

      <h2>Recording</h2>
      {c.recording ? (
        <Waveform ref={wave} url={c.recording.url} />
      ) : (
        <p className="text-muted text-sm">This call has no recording (the agent does not record, or the edge has not uploaded it yet).</p>
      )}

      <h2>Events</h2>
      <ol className="border-l-2 border-slate-200 dark:border-slate-800 pl-4 text-sm" aria-label="Events">
        {c.events.map((e) => (
          <li key={e.id} className="mb-2">
            <span className="text-muted">{time(e.at)}</span> <span className="font-medium">{e.kind}</span>
            <details className="inline ml-2">
              <summary className="cursor-pointer text-muted inline">payload</summary>
              <pre className="mt-1 overflow-x-auto text-xs bg-slate-50 dark:bg-slate-900 p-2 rounded">{JSON.stringify(e.payload, null, 2)}</pre>
            </details>
          </li>
        ))}
      </ol>
    </Page>
  );
}
