// What happened today and this week, and which edges are live, at a glance.
import { useQuery } from "@tanstack/react-query";
import { api, ok, type Schemas } from "../api/client";
import { ErrorNote, Loading, Page } from "../components/ui";

type Bucket = Schemas["BucketView"];

/** The buckets of one range folded into one: sums, and the worst percentiles (a bound). */
export function fold(buckets: Bucket[]) {
  const calls = buckets.reduce((n, b) => n + b.calls, 0);
  const answered = buckets.reduce((n, b) => n + b.answered, 0);
  const outcomes: Record<string, number> = {};
  for (const b of buckets) for (const [k, v] of Object.entries(b.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + v;
  const withLatency = buckets.filter((b) => b.voice_to_voice_ms);
  const turns = withLatency.reduce((n, b) => n + (b.voice_to_voice_ms?.turns ?? 0), 0);
  // Each bucket's percentile weighted by its turns: close enough for one glance.
  const weighted = (pick: (l: Schemas["LatencyView"]) => number) =>
    turns ? Math.round(withLatency.reduce((n, b) => n + pick(b.voice_to_voice_ms!) * b.voice_to_voice_ms!.turns, 0) / turns) : null;
  return { calls, answered, outcomes, p50: weighted((l) => l.p50), p95: weighted((l) => l.p95) };
}

// Ends that are a conversation finishing as it should; every other reason counts as a failure.
const NORMAL_ENDS = new Set([
  "caller_hangup", "remote_hangup", "caller_cancelled", "hangup_requested", "transferred", "end_call_tool",
  "end_call_phrase", "workflow_exit", "bridge_ended", "max_duration",
]);

function Stat({ label, value }: { label: string; value: string }) {
  return (
    <div className="card">
      <div className="text-sm text-muted">{label}</div>
      <div className="text-2xl font-semibold mt-1">{value}</div>
    </div>
  );
}

function startOfToday(): string {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

export function Overview() {
  const now = new Date();
  const weekAgo = new Date(now.getTime() - 7 * 86_400_000).toISOString();
  const week = useQuery({
    queryKey: ["analytics", "week"],
    queryFn: async () => ok(await api.GET("/v1/analytics/calls", { params: { query: { from: weekAgo, interval: "hour" } } })),
    refetchInterval: 30_000,
  });
  const edges = useQuery({
    queryKey: ["edges"],
    queryFn: async () => ok(await api.GET("/v1/edges")),
    refetchInterval: 10_000,
  });
  const todayFrom = Date.parse(startOfToday());
  const weekBuckets = week.data?.buckets ?? [];
  const w = fold(weekBuckets);
  const t = fold(weekBuckets.filter((b) => Date.parse(b.start) >= todayFrom));
  const failures = Object.entries(w.outcomes)
    .filter(([reason]) => !NORMAL_ENDS.has(reason))
    .sort((a, b) => b[1] - a[1]);
  const live = (edges.data ?? []).filter((e) => e.status !== "offline");
  const regions = new Map<string, { edges: number; calls: number; capacity: number }>();
  for (const e of live) {
    const r = regions.get(e.region) ?? { edges: 0, calls: 0, capacity: 0 };
    regions.set(e.region, { edges: r.edges + 1, calls: r.calls + e.active_calls, capacity: r.capacity + e.capacity });
  }
  const pct = (a: number, b: number) => (b ? `${Math.round((100 * a) / b)} %` : "—");
  const ms = (v: number | null) => (v == null ? "—" : `${v} ms`);

  return (
    <Page title="Overview">
      <ErrorNote error={week.error ?? edges.error} />
      {week.isPending ? (
        <Loading what="call figures" />
      ) : (
        <div className="grid grid-cols-2 lg:grid-cols-3 gap-3">
          <Stat label="Calls today" value={String(t.calls)} />
          <Stat label="Calls this week" value={String(w.calls)} />
          <Stat label="Answer rate (week)" value={pct(w.answered, w.calls)} />
          <Stat label="Live calls" value={String(live.reduce((n, e) => n + e.active_calls, 0))} />
          <Stat label="Voice-to-voice p50 (week)" value={ms(w.p50)} />
          <Stat label="Voice-to-voice p95 (week)" value={ms(w.p95)} />
        </div>
      )}
      <h2>Failures by reason (week)</h2>
      {failures.length === 0 ? (
        <p className="text-muted text-sm">No failed calls this week.</p>
      ) : (
        <table className="table max-w-lg">
          <thead>
            <tr>
              <th scope="col">Reason</th>
              <th scope="col">Calls</th>
            </tr>
          </thead>
          <tbody>
            {failures.map(([reason, n]) => (
              <tr key={reason}>
                <td>{reason}</td>
                <td>{n}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Live edges by region</h2>
      {edges.isPending ? (
        <Loading what="edges" />
      ) : regions.size === 0 ? (
        <p className="text-muted text-sm">No edge is online.</p>
      ) : (
        <table className="table max-w-lg">
          <thead>
            <tr>
              <th scope="col">Region</th>
              <th scope="col">Edges</th>
              <th scope="col">Calls / capacity</th>
            </tr>
          </thead>
          <tbody>
            {[...regions].map(([region, r]) => (
              <tr key={region}>
                <td>{region}</td>
                <td>{r.edges}</td>
                <td>
                  {r.calls} / {r.capacity}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}
