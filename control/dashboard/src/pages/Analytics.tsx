// Volumes and outcomes over time, latency percentiles and what providers bill by (minutes per
// provider: `ProviderMinutes.tsx`), for the last day, week or month or days chosen by date.
import { useQuery } from "@tanstack/react-query";
import { useMemo, useState, type FormEvent } from "react";
import { api, ok } from "../api/client";
import { Chart } from "../components/Chart";
import { ErrorNote, Loading, Page } from "../components/ui";
import { fold } from "./Overview";
import { ProviderMinutes } from "./ProviderMinutes";

const DAY_MS = 86_400_000;
const RANGES = { "24h": 1, "7d": 7, "30d": 30 } as const;
type Preset = keyof typeof RANGES;
/** A preset counted back from now, or whole local days from one date to another (both included). */
type Range = { preset: Preset } | { first: string; last: string };

/** The range's bounds and the bucket size that keeps its charts readable (hours up to a week). */
function bounds(range: Range): { from: string; to: string; interval: "hour" | "day" } | null {
  let from: number;
  let to: number;
  if ("preset" in range) {
    to = Date.now();
    from = to - RANGES[range.preset] * DAY_MS;
  } else {
    from = new Date(`${range.first}T00:00`).getTime();
    to = new Date(`${range.last}T00:00`).getTime() + DAY_MS;
    if (Number.isNaN(from) || Number.isNaN(to) || to <= from) return null;
  }
  return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), interval: to - from <= 7 * DAY_MS ? "hour" : "day" };
}

/** Two dates and a button: the days to show. */
function DaysForm({ onChoose }: { onChoose: (r: Range) => void }) {
  function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    onChoose({ first: String(form.get("first") ?? ""), last: String(form.get("last") ?? "") });
  }
  const today = new Date().toISOString().slice(0, 10);
  return (
    <form onSubmit={submit} className="flex flex-wrap items-end gap-2 mb-4" aria-label="Days to show">
      <div>
        <label className="label" htmlFor="range-first">
          First day
        </label>
        <input id="range-first" name="first" type="date" required max={today} className="input" />
      </div>
      <div>
        <label className="label" htmlFor="range-last">
          Last day
        </label>
        <input id="range-last" name="last" type="date" required defaultValue={today} className="input" />
      </div>
      <button className="btn" type="submit">
        Show these days
      </button>
    </form>
  );
}

export function Analytics() {
  const [range, setRange] = useState<Range>({ preset: "7d" });
  // Bounds are fixed when the range is chosen, so the queries below keep one key.
  const chosen = useMemo(() => bounds(range), [range]);
  const analytics = useQuery({
    queryKey: ["analytics", chosen],
    enabled: chosen != null,
    queryFn: async () => {
      const { from, to, interval } = chosen!;
      const answer = ok(await api.GET("/v1/analytics/calls", { params: { query: { from, to, interval } } }));
      return { answer, span: [Date.parse(from) / 1000, Date.parse(to) / 1000] as [number, number] };
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
          {(Object.keys(RANGES) as Preset[]).map((r) => {
            const on = "preset" in range && range.preset === r;
            return (
              <button key={r} className={on ? "btn-primary" : "btn"} aria-pressed={on} onClick={() => setRange({ preset: r })}>
                {r}
              </button>
            );
          })}
        </div>
      }
    >
      <DaysForm onChoose={setRange} />
      {chosen == null && (
        <p role="alert" className="field-error">
          The last day must not come before the first.
        </p>
      )}
      {"first" in range && chosen && (
        <p className="text-sm text-muted mt-2">
          From {range.first} to {range.last}, both included.
        </p>
      )}
      <ErrorNote error={analytics.error} />
      {chosen == null ? null : analytics.isPending ? (
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
          <h2>Minutes per provider</h2>
          <ProviderMinutes from={chosen!.from} to={chosen!.to} />
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
