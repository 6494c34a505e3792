// Volumes and outcomes over time, latency percentiles and what providers bill by, for a range.
import { useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { api, ok } from "../api/client";
import { Chart } from "../components/Chart";
import { ErrorNote, Loading, Page } from "../components/ui";
import { fold } from "./Overview";

const RANGES = { "24h": { days: 1, interval: "hour" }, "7d": { days: 7, interval: "hour" }, "30d": { days: 30, interval: "day" } } as const;
type Range = keyof typeof RANGES;

export function Analytics() {
  const [range, setRange] = useState<Range>("7d");
  const { days, interval } = RANGES[range];
  const analytics = useQuery({
    queryKey: ["analytics", range],
    queryFn: async () => {
      const to = new Date();
      const from = new Date(to.getTime() - days * 86_400_000);
      const answer = ok(await api.GET("/v1/analytics/calls", { params: { query: { from: from.toISOString(), to: to.toISOString(), interval } } }));
      return { answer, span: [from.getTime() / 1000, to.getTime() / 1000] as [number, number] };
    },
  });
  const buckets = analytics.data?.answer.buckets ?? [];
  const span = analytics.data?.span ?? [0, 1];
  const charts = useMemo(() => {
    const times = buckets.map((b) => Date.parse(b.start) / 1000);
    return {
      times,
      volume: [
        { label: "Calls", color: "#4338ca", values: buckets.map((b) => b.calls) },
        { label: "Answered", color: "#059669", values: buckets.map((b) => b.answered) },
      ],
      latency: [
        { label: "p50", color: "#0284c7", values: buckets.map((b) => b.voice_to_voice_ms?.p50 ?? null) },
        { label: "p95", color: "#d97706", values: buckets.map((b) => b.voice_to_voice_ms?.p95 ?? null) },
      ],
      minutes: [{ label: "Billable minutes", color: "#7c3aed", values: buckets.map((b) => b.usage.billable_minutes) }],
    };
  }, [buckets]);
  const total = fold(buckets);
  const usage = buckets.reduce(
    (u, b) => ({
      minutes: u.minutes + b.usage.billable_minutes,
      speech: u.speech + b.usage.caller_speech_ms,
      synthesized: u.synthesized + b.usage.agent_characters_synthesized,
      turns: u.turns + b.usage.agent_turns,
    }),
    { minutes: 0, speech: 0, synthesized: 0, turns: 0 },
  );
  return (
    <Page
      title="Analytics"
      actions={
        <div role="group" aria-label="Range" className="flex gap-1">
          {(Object.keys(RANGES) as Range[]).map((r) => (
            <button key={r} className={r === range ? "btn-primary" : "btn"} aria-pressed={r === range} onClick={() => setRange(r)}>
              {r}
            </button>
          ))}
        </div>
      }
    >
      <ErrorNote error={analytics.error} />
      {analytics.isPending ? (
        <Loading what="analytics" />
      ) : buckets.length === 0 ? (
        <p className="text-muted">No calls in this range.</p>
      ) : (
        <>
          <Chart title="Calls" span={span} times={charts.times} series={charts.volume} />
          <Chart title="Voice-to-voice latency" span={span} times={charts.times} series={charts.latency} unit=" ms" />
          <Chart title="Billable minutes" span={span} times={charts.times} series={charts.minutes} />
          <h2>Outcomes</h2>
          <table className="table max-w-lg">
            <thead>
              <tr>
                <th scope="col">Outcome</th>
                <th scope="col">Calls</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(total.outcomes).map(([k, v]) => (
                <tr key={k}>
                  <td>{k}</td>
                  <td>{v}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Cost drivers</h2>
          <dl className="grid grid-cols-2 md:grid-cols-4 gap-3 text-sm">
            <div className="card"><dt className="text-muted">Billable minutes</dt><dd className="text-lg font-semibold">{usage.minutes}</dd></div>
            <div className="card"><dt className="text-muted">Speech recognised</dt><dd className="text-lg font-semibold">{Math.round(usage.speech / 1000)} s</dd></div>
            <div className="card"><dt className="text-muted">Characters synthesized</dt><dd className="text-lg font-semibold">{usage.synthesized}</dd></div>
            <div className="card"><dt className="text-muted">Model turns</dt><dd className="text-lg font-semibold">{usage.turns}</dd></div>
          </dl>
        </>
      )}
    </Page>
  );
}
