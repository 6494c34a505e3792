// Webhook subscriptions and their deliveries: status, response, and redelivery.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, atLeast, ok } from "../api/client";
import { ErrorNote, Loading, Page, RoleNote, time } from "../components/ui";
import { useSession } from "../session";

function Deliveries({ id }: { id: string }) {
  const queryClient = useQueryClient();
  const deliveries = useQuery({
    queryKey: ["deliveries", id],
    queryFn: async () => ok(await api.GET("/v1/webhooks/{id}/deliveries", { params: { path: { id } } })),
    refetchInterval: 10_000,
  });
  const redeliver = useMutation({
    mutationFn: async (delivery_id: string) =>
      ok(await api.POST("/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", { params: { path: { id, delivery_id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["deliveries", id] }),
  });
  if (deliveries.isPending) return <Loading what="deliveries" />;
  return (
    <>
      <ErrorNote error={deliveries.error ?? redeliver.error} />
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Event</th>
            <th scope="col">Status</th>
            <th scope="col">Response</th>
            <th scope="col">Attempts</th>
            <th scope="col">Created</th>
            <th scope="col">Redeliver</th>
          </tr>
        </thead>
        <tbody>
          {deliveries.data?.data.map((d) => (
            <tr key={d.id}>
              <td>{d.event}</td>
              <td>
                <span className="badge">{d.status}</span>
              </td>
              <td>{d.last_status_code ?? d.last_error ?? "—"}</td>
              <td>{d.attempts}</td>
              <td>{time(d.created_at)}</td>
              <td>
                <button className="btn" onClick={() => redeliver.mutate(d.id)}>
                  Redeliver
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export function Webhooks() {
  const { role } = useSession();
  return (
    <Page title="Webhooks">
      {atLeast(role, "admin") ? (
        <Subscriptions />
      ) : (
        <RoleNote least="admin" what="see webhook subscriptions and their deliveries (their URLs and payloads may carry secrets)" />
      )}
    </Page>
  );
}

/** Each subscription, its deliveries opened on demand; for admins. */
function Subscriptions() {
  const [open, setOpen] = useState<string | null>(null);
  const hooks = useQuery({
    queryKey: ["webhooks"],
    queryFn: async () => ok(await api.GET("/v1/webhooks", { params: { query: { limit: 500 } } })),
  });
  return (
    <>
      <ErrorNote error={hooks.error} />
      {hooks.isPending ? (
        <Loading what="webhooks" />
      ) : (hooks.data?.data ?? []).length === 0 ? (
        <p className="text-muted">No webhook subscriptions.</p>
      ) : (
        <ul className="flex flex-col gap-3">
          {hooks.data?.data.map((h) => (
            <li key={h.id} className="card">
              <div className="flex justify-between gap-2 items-center">
                <div>
                  <div className="font-mono text-sm break-all">{h.url}</div>
                  <div className="text-xs text-muted">{h.events.join(", ")}</div>
                </div>
                <button className="btn" aria-expanded={open === h.id} onClick={() => setOpen(open === h.id ? null : h.id)}>
                  {open === h.id ? "Hide deliveries" : "Deliveries"}
                </button>
              </div>
              {open === h.id && (
                <div className="mt-3">
                  <Deliveries id={h.id} />
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
