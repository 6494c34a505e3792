// Who changed what: the workspace's audit log, filtered by the API by the start of the action,
// the kind of resource and the actor (named by their email or key name).
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, atLeast, ok } from "../api/client";
import { ErrorNote, Loading, Page, RoleNote, time } from "../components/ui";
import { useSession } from "../session";

export function AuditLog() {
  const { role } = useSession();
  return (
    <Page title="Audit log">
      {atLeast(role, "admin") ? <Entries /> : <RoleNote least="admin" what="read the audit log" />}
    </Page>
  );
}

/** Every kind of resource the control plane writes entries about (`account` and
 * `client_address`: login lockouts). */
const RESOURCE_TYPES = [
  "agent", "workflow", "phone_number", "provider", "webhook", "webhook_delivery", "api_key", "member",
  "workspace", "call", "erasure", "edge", "account", "client_address",
];

interface Filter {
  action: string;
  resource_type: string;
  actor: string;
}

/** Who an actor is, in words: a member's email or a key's name, else the actor as stored. */
function useActorNames(): Map<string, string> {
  const { workspace } = useSession();
  const workspace_id = workspace?.id ?? "";
  const members = useQuery({
    queryKey: ["members"],
    queryFn: async () => ok(await api.GET("/v1/workspaces/{workspace_id}/members", { params: { path: { workspace_id } } })),
  });
  const keys = useQuery({
    queryKey: ["keys"],
    queryFn: async () => ok(await api.GET("/v1/workspaces/{workspace_id}/api-keys", { params: { path: { workspace_id } } })),
  });
  return new Map([
    ...(members.data?.data ?? []).map((m) => [`user:${m.user_id}`, m.email] as const),
    ...(keys.data?.data ?? []).map((k) => [`api_key:${k.id}`, `key “${k.name}”`] as const),
  ]);
}

/** The entries, newest first, filtered by the API (so older entries are found too); for admins. */
function Entries() {
  const [filter, setFilter] = useState<Filter>({ action: "", resource_type: "", actor: "" });
  const actors = useActorNames();
  const log = useInfiniteQuery({
    queryKey: ["audit", filter],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) =>
      ok(
        await api.GET("/v1/audit-log", {
          params: {
            query: {
              cursor: pageParam,
              limit: 100,
              action: filter.action || undefined,
              resource_type: filter.resource_type || undefined,
              actor: filter.actor || undefined,
            },
          },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const rows = log.data?.pages.flatMap((p) => p.data) ?? [];

  function apply(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setFilter({
      action: String(form.get("action") ?? "").trim(),
      resource_type: String(form.get("resource_type") ?? ""),
      actor: String(form.get("actor") ?? ""),
    });
  }

  return (
    <>
      <form className="flex flex-wrap gap-3 mb-4 items-end" aria-label="Filter the audit log" onSubmit={apply}>
        <div>
          <label className="label" htmlFor="a-action">Action starts with</label>
          <input id="a-action" name="action" className="input w-48" placeholder="agent. or agent.updated" defaultValue={filter.action} />
        </div>
        <div>
          <label className="label" htmlFor="a-resource">Resource</label>
          <select id="a-resource" name="resource_type" className="input w-44" defaultValue={filter.resource_type}>
            <option value="">Any</option>
            {RESOURCE_TYPES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </div>
        <div>
          <label className="label" htmlFor="a-actor">Actor</label>
          <select id="a-actor" name="actor" className="input w-56" defaultValue={filter.actor}>
            <option value="">Anyone</option>
            {[...actors].map(([actor, name]) => (
              <option key={actor} value={actor}>
                {name}
              </option>
            ))}
          </select>
        </div>
        <button className="btn" type="submit">
          Filter
        </button>
      </form>
      <ErrorNote error={log.error} />
      {log.isPending ? (
        <Loading what="the audit log" />
      ) : rows.length === 0 ? (
        <p className="text-muted">No entry matches.</p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Resource</th>
              <th scope="col">From</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr key={e.id}>
                <td className="whitespace-nowrap">{time(e.at)}</td>
                <td className="break-all" title={e.actor}>
                  {actors.get(e.actor) ?? e.actor}
                </td>
                <td>{e.action}</td>
                <td>
                  {e.resource_type} <span className="text-muted font-mono text-xs">{e.resource_id.slice(0, 8)}</span>
                </td>
                <td>{e.source_ip ?? "—"}</td>
                <td>
                  <code className="text-xs break-all">{JSON.stringify(e.detail)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {log.hasNextPage && (
        <button className="btn mt-3" onClick={() => void log.fetchNextPage()} disabled={log.isFetchingNextPage}>
          Load older entries
        </button>
      )}
    </>
  );
}
