// Who changed what: the workspace's audit log, filtered by action, resource and actor.
import { useInfiniteQuery } from "@tanstack/react-query";
import { useState } from "react";
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

/** The entries, newest first, with their filters; for admins. */
function Entries() {
  const [filter, setFilter] = useState({ action: "", resource: "", actor: "" });
  const log = useInfiniteQuery({
    queryKey: ["audit"],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) => ok(await api.GET("/v1/audit-log", { params: { query: { cursor: pageParam, limit: 100 } } })),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
  const all = log.data?.pages.flatMap((p) => p.data) ?? [];
  const rows = all.filter(
    (e) =>
      e.action.includes(filter.action) &&
      (filter.resource === "" || e.resource_type === filter.resource) &&
      e.actor.toLowerCase().includes(filter.actor.toLowerCase()),
  );
  const resources = [...new Set(all.map((e) => e.resource_type))].sort();
  return (
    <>
      <form className="flex flex-wrap gap-3 mb-4 items-end" aria-label="Filter the audit log" onSubmit={(e) => e.preventDefault()}>
        <div>
          <label className="label" htmlFor="a-action">Action contains</label>
          <input id="a-action" className="input w-48" value={filter.action} onChange={(e) => setFilter({ ...filter, action: e.target.value })} />
        </div>
        <div>
          <label className="label" htmlFor="a-resource">Resource</label>
          <select id="a-resource" className="input w-40" value={filter.resource} onChange={(e) => setFilter({ ...filter, resource: e.target.value })}>
            <option value="">Any</option>
            {resources.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </div>
        <div>
          <label className="label" htmlFor="a-actor">Actor contains</label>
          <input id="a-actor" className="input w-48" value={filter.actor} onChange={(e) => setFilter({ ...filter, actor: e.target.value })} />
        </div>
      </form>
      <ErrorNote error={log.error} />
      {log.isPending ? (
        <Loading what="the audit log" />
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
                <td className="break-all">{e.actor}</td>
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
