// Minutes per provider, the cost driver each speech, model and voice vendor bills by: the
// range's billable minutes grouped by agent (`group_by=agent`), each agent's minutes counted
// once under each of its providers. An agent's providers are read as they are now, so minutes
// of an agent changed during the range count under its present providers (said on the page).
import { useQuery } from "@tanstack/react-query";
import { api, ok, type Schemas } from "../api/client";
import { ErrorNote, Loading } from "../components/ui";

type Agent = Schemas["AgentView"];
type Bucket = Schemas["BucketView"];

const STAGES = [
  ["stt", "Speech to text"],
  ["llm", "Language model"],
  ["tts", "Text to speech"],
] as const;

interface Row {
  stage: string;
  provider: string;
  minutes: number;
  calls: number;
}

/** Which provider an agent uses at `stage`: its own, `rules` for the offline replier, or the edge's. */
function providerOf(agent: Agent | undefined, stage: (typeof STAGES)[number][0]): string {
  if (!agent) return "unknown (no agent)";
  const own = agent[stage]?.provider;
  if (own) return own;
  if (stage === "llm" && agent.rules) return "rules";
  return "the edge's default";
}

/** Sums `buckets` (grouped by agent) into minutes and calls per stage and provider, largest first. */
export function minutesByProvider(buckets: Bucket[], agents: Map<string, Agent>): Row[] {
  const rows = new Map<string, Row>();
  for (const b of buckets) {
    const agent = b.group ? agents.get(b.group) : undefined;
    for (const [stage, label] of STAGES) {
      const provider = b.group && !agent ? "a deleted agent" : providerOf(agent, stage);
      const key = `${stage}\u0000${provider}`;
      const row = rows.get(key) ?? { stage: label, provider, minutes: 0, calls: 0 };
      row.minutes += b.usage.billable_minutes;
      row.calls += b.calls;
      rows.set(key, row);
    }
  }
  return [...rows.values()].sort((a, b) => a.stage.localeCompare(b.stage) || b.minutes - a.minutes);
}

export function ProviderMinutes({ from, to }: { from: string; to: string }) {
  const grouped = useQuery({
    queryKey: ["analytics", "by-agent", from, to],
    queryFn: async () => ok(await api.GET("/v1/analytics/calls", { params: { query: { from, to, interval: "day", group_by: "agent" } } })),
  });
  const agents = useQuery({
    queryKey: ["agents"],
    queryFn: async () => ok(await api.GET("/v1/agents", { params: { query: { limit: 500 } } })),
  });
  if (grouped.isPending || agents.isPending) return <Loading what="minutes per provider" />;
  if (grouped.isError || agents.isError) return <ErrorNote error={grouped.error ?? agents.error} />;
  const byId = new Map(agents.data.data.map((a) => [a.id, a]));
  const rows = minutesByProvider(grouped.data.buckets, byId);
  return (
    <>
      <table className="table max-w-2xl" aria-label="Minutes per provider">
        <thead>
          <tr>
            <th scope="col">Stage</th>
            <th scope="col">Provider</th>
            <th scope="col">Billable minutes</th>
            <th scope="col">Calls</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={`${r.stage}-${r.provider}`}>
              <td>{r.stage}</td>
              <td>{r.provider}</td>
              <td>{r.minutes}</td>
              <td>{r.calls}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="text-xs text-muted mt-1 max-w-2xl">
        Each agent's minutes count under the providers it has now; calls answered by a workflow without an agent show as
        “unknown (no agent)”.
      </p>
    </>
  );
}
