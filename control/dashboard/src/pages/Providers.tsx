// Telephony providers (SIP trunks, Twilio accounts) in the order calls try them; secrets masked.
// A trunk that registers with its PBX shows the registration's state, as the edges report it;
// every SIP trunk shows its health from the edges' OPTIONS pings. Editors and up may test a
// provider now ("Test"): the outcome and its latency show beside the button, and the health
// badge follows it.
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ok } from "../api/client";
import type { components } from "../api/schema";
import { ErrorNote, IfRole, Loading, Page, time } from "../components/ui";

/** Lower is tried first; a trunk without one comes after those with one. */
function priority(p: object): number {
  const v = (p as { priority?: number | null }).priority;
  return typeof v === "number" ? v : Number.MAX_SAFE_INTEGER;
}

type Registration = components["schemas"]["RegistrationView"];
type Health = components["schemas"]["ProviderHealth"];
type TestResult = components["schemas"]["ProviderTestResult"];

/** "Test": checks the provider now and shows what came back; the list is read again after. */
function TestButton({ id, name }: { id: string; name: string }) {
  const queryClient = useQueryClient();
  const [result, setResult] = useState<TestResult | null>(null);
  const test = useMutation({
    mutationFn: async () => ok(await api.POST("/v1/providers/{id}/test", { params: { path: { id } } })),
    onSuccess: (answer) => {
      setResult(answer);
      return queryClient.invalidateQueries({ queryKey: ["providers"] });
    },
    onError: () => setResult(null),
  });
  return (
    <div data-testid="provider-test" aria-live="polite">
      <button className="btn" aria-label={`Test ${name}`} disabled={test.isPending} onClick={() => test.mutate()}>
        {test.isPending ? "Testing…" : "Test"}
      </button>
      {result && (
        <div className="text-xs" data-testid="test-result">
          <span className="badge">{result.ok ? "ok" : "failed"}</span>{" "}
          {result.latency_ms == null ? null : <span>{result.latency_ms} ms </span>}
          <span className="text-muted">{result.detail}</span>
        </div>
      )}
      <ErrorNote error={test.error} />
    </div>
  );
}

/** A provider's health: up, down or unknown, the best round trip, each edge's view, the last test. */
function HealthState({ health }: { health?: Health | null }) {
  if (!health) return <span className="text-muted">—</span>;
  const edges = health.edges.map((e) => `${e.edge}: ${e.state}${e.rtt_ms == null ? "" : ` ${e.rtt_ms} ms`}`).join(", ");
  return (
    <div data-testid="health" title={edges || undefined}>
      <span className="badge">{health.state}</span>
      {health.rtt_ms == null ? null : <span className="text-xs text-muted"> {health.rtt_ms} ms</span>}
      {health.last_error ? <div className="text-xs">{health.last_error}</div> : null}
      {edges ? <div className="text-xs text-muted">{edges}</div> : null}
      {health.last_test ? (
        <div className="text-xs text-muted">
          tested {time(health.last_test.checked_at)}: {health.last_test.ok ? "ok" : "failed"}
        </div>
      ) : null}
    </div>
  );
}

/** A trunk's registration: its state, until when it holds, and why it last failed. */
function RegistrationState({ registration }: { registration?: Registration | null }) {
  if (!registration) return <span className="text-muted">—</span>;
  return (
    <div data-testid="registration">
      <span className="badge">{registration.state}</span>
      {registration.expires_at ? <div className="text-xs text-muted">until {time(registration.expires_at)}</div> : null}
      {registration.last_error ? <div className="text-xs">{registration.last_error}</div> : null}
    </div>
  );
}

export function Providers() {
  const providers = useQuery({
    queryKey: ["providers"],
    queryFn: async () => ok(await api.GET("/v1/providers", { params: { query: { limit: 500 } } })),
  });
  return (
    <Page title="Providers">
      <ErrorNote error={providers.error} />
      {providers.isPending ? (
        <Loading what="providers" />
      ) : (providers.data?.data ?? []).length === 0 ? (
        <p className="text-muted">No telephony provider: calls come in over SIP directly, and none can be placed.</p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Priority</th>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Health</th>
              <th scope="col">Registration</th>
              <th scope="col">Settings</th>
              <th scope="col">Updated</th>
              <IfRole least="editor">
                <th scope="col">Test</th>
              </IfRole>
            </tr>
          </thead>
          <tbody>
            {[...(providers.data?.data ?? [])].sort((a, b) => priority(a) - priority(b)).map((p) => {
              const { id, workspace_id: _w, created_at: _c, updated_at, registration, health, ...spec } = p as Record<string, unknown> & {
                id: string;
                updated_at: string;
                registration?: Registration | null;
                health?: Health | null;
              };
              return (
                <tr key={id}>
                  <td>{spec.priority == null ? "—" : String(spec.priority)}</td>
                  <td>{String(spec.name ?? id.slice(0, 8))}</td>
                  <td>{String(spec.kind ?? "sip_trunk")}</td>
                  <td>
                    <HealthState health={health} />
                  </td>
                  <td>
                    <RegistrationState registration={registration} />
                  </td>
                  <td>
                    <code className="text-xs break-all">{JSON.stringify(spec)}</code>
                  </td>
                  <td>{time(updated_at)}</td>
                  <IfRole least="editor">
                    <td>
                      <TestButton id={id} name={String(spec.name ?? id.slice(0, 8))} />
                    </td>
                  </IfRole>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </Page>
  );
}
