// The cluster: each edge's state, region, load and whether it drains.
import { useQuery } from "@tanstack/react-query";
import { api, ok } from "../api/client";
import { ErrorNote, Loading, Page, time } from "../components/ui";

export function Edges() {
  const edges = useQuery({ queryKey: ["edges"], queryFn: async () => ok(await api.GET("/v1/edges")), refetchInterval: 5_000 });
  return (
    <Page title="Edges">
      <ErrorNote error={edges.error} />
      {edges.isPending ? (
        <Loading what="edges" />
      ) : (edges.data ?? []).length === 0 ? (
        <p className="text-muted">No edge has registered.</p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Edge</th>
              <th scope="col">Region</th>
              <th scope="col">State</th>
              <th scope="col">Cluster view</th>
              <th scope="col">Load</th>
              <th scope="col">SIP address</th>
              <th scope="col">Version</th>
              <th scope="col">Last seen</th>
            </tr>
          </thead>
          <tbody>
            {edges.data?.map((e) => (
              <tr key={e.id}>
                <td className="font-mono">{e.id}</td>
                <td>{e.region}</td>
                <td>
                  <span className="badge">{e.status}</span>
                </td>
                <td>{e.cluster_state ?? "—"}</td>
                <td>
                  <meter min={0} max={Math.max(e.capacity, 1)} value={e.active_calls} aria-label={`${e.id} load`} className="w-20 align-middle" />{" "}
                  {e.active_calls} / {e.capacity}
                </td>
                <td className="font-mono">{e.sip_addr}</td>
                <td>{e.version}</td>
                <td>{time(e.last_seen)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}
