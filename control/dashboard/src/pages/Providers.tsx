// Telephony providers (SIP trunks, Twilio accounts) in the order calls try them; secrets masked.
import { useQuery } from "@tanstack/react-query";
import { api, ok } from "../api/client";
import { ErrorNote, Loading, Page, time } from "../components/ui";

/** Lower is tried first; a trunk without one comes after those with one. */
function priority(p: object): number {
  const v = (p as { priority?: number | null }).priority;
  return typeof v === "number" ? v : Number.MAX_SAFE_INTEGER;
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
              <th scope="col">Settings</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {[...(providers.data?.data ?? [])].sort((a, b) => priority(a) - priority(b)).map((p) => {
              const { id, workspace_id: _w, created_at: _c, updated_at, ...spec } = p as Record<string, unknown> & { id: string; updated_at: string };
              return (
                <tr key={id}>
                  <td>{spec.priority == null ? "—" : String(spec.priority)}</td>
                  <td>{String(spec.name ?? id.slice(0, 8))}</td>
                  <td>{String(spec.kind ?? "sip_trunk")}</td>
                  <td>
                    <code className="text-xs break-all">{JSON.stringify(spec)}</code>
                  </td>
                  <td>{time(updated_at)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </Page>
  );
}
