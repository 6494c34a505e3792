// The call log: filters, pages by cursor, live calls refreshed by polling; each call's median
// reply latency comes with the page (`latency_ms`).
import { useQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, ok } from "../api/client";
import { useAgentNames } from "../calls";
import { callDuration, ErrorNote, Loading, Page, time } from "../components/ui";
import { Link, navigate, useSearch } from "../router";

const FILTERS = ["number", "agent_id", "status", "direction", "from", "to"] as const;

function toIso(local: string | null): string | undefined {
  if (!local) return undefined;
  const t = Date.parse(local);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

export function Calls() {
  const search = useSearch();
  const names = useAgentNames();
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const filter = Object.fromEntries(FILTERS.map((k) => [k, search.get(k) ?? ""]));
  const query = {
    number: filter.number || undefined,
    agent_id: filter.agent_id || undefined,
    status: filter.status || undefined,
    direction: filter.direction || undefined,
    from: toIso(filter.from),
    to: toIso(filter.to),
    cursor,
    limit: 25,
  };
  const calls = useQuery({
    queryKey: ["calls", query],
    queryFn: async () => ok(await api.GET("/v1/calls", { params: { query } })),
    refetchInterval: 5_000,
  });

  function apply(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const params = new URLSearchParams();
    for (const k of FILTERS) {
      const v = String(form.get(k) ?? "").trim();
      if (v) params.set(k, v);
    }
    setCursors([]);
    navigate(`/calls${params.size ? `?${params}` : ""}`);
  }

  const rows = calls.data?.data ?? [];
  const live = rows.filter((c) => !c.ended_at && c.status !== "failed");
  return (
    <Page title="Calls">
      <form onSubmit={apply} className="flex flex-wrap items-end gap-3 mb-4" aria-label="Filter calls">
        <div>
          <label className="label" htmlFor="f-number">Number</label>
          <input id="f-number" name="number" defaultValue={filter.number} className="input w-36" />
        </div>
        <div>
          <label className="label" htmlFor="f-agent">Agent</label>
          <select id="f-agent" name="agent_id" defaultValue={filter.agent_id} className="input w-40">
            <option value="">Any</option>
            {[...names].map(([id, name]) => (
              <option key={id} value={id}>{name}</option>
            ))}
          </select>
        </div>
        <div>
          <label className="label" htmlFor="f-status">Status</label>
          <select id="f-status" name="status" defaultValue={filter.status} className="input w-36">
            <option value="">Any</option>
            {["queued", "ringing", "in_progress", "ended", "failed"].map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </div>
        <div>
          <label className="label" htmlFor="f-direction">Direction</label>
          <select id="f-direction" name="direction" defaultValue={filter.direction} className="input w-32">
            <option value="">Any</option>
            <option>inbound</option>
            <option>outbound</option>
          </select>
        </div>
        <div>
          <label className="label" htmlFor="f-from">From</label>
          <input id="f-from" name="from" type="datetime-local" defaultValue={filter.from} className="input" />
        </div>
        <div>
          <label className="label" htmlFor="f-to">To</label>
          <input id="f-to" name="to" type="datetime-local" defaultValue={filter.to} className="input" />
        </div>
        <button className="btn" type="submit">Filter</button>
      </form>
      <ErrorNote error={calls.error} />
      <p className="text-sm text-muted mb-2" aria-live="polite">
        {live.length} live {live.length === 1 ? "call" : "calls"} on this page; refreshed every 5 seconds.
      </p>
      {calls.isPending ? (
        <Loading what="calls" />
      ) : rows.length === 0 ? (
        <p className="text-muted">No calls match.</p>
      ) : (
        <div className="overflow-x-auto">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Number</th>
                <th scope="col">Agent</th>
                <th scope="col">Duration</th>
                <th scope="col">Outcome</th>
                <th scope="col">Latency</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((c) => (
                <tr key={c.id}>
                  <td>
                    <Link to={`/calls/${c.id}`}>{time(c.started_at)}</Link>
                  </td>
                  <td>
                    {c.direction === "inbound" ? c.to : c.from} <span className="text-muted">({c.direction === "inbound" ? `from ${c.from ?? "?"}` : `to ${c.to ?? "?"}`})</span>
                  </td>
                  <td>{c.agent_id ? names.get(c.agent_id) ?? c.agent_id.slice(0, 8) : "—"}</td>
                  <td>{callDuration(c)}</td>
                  <td>
                    <span className="badge">{c.ended_at ? c.end_reason ?? c.status : c.status}</span>
                  </td>
                  <td>{c.latency_ms == null ? "—" : `${c.latency_ms} ms`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div className="flex gap-2 mt-3">
        <button className="btn" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
          Previous page
        </button>
        <button
          className="btn"
          disabled={!calls.data?.next_cursor}
          onClick={() => calls.data?.next_cursor && setCursors([...cursors, calls.data.next_cursor])}
        >
          Next page
        </button>
      </div>
    </Page>
  );
}
