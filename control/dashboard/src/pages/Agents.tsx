// The agents of the workspace, each with the line that calls it.
import { useQuery } from "@tanstack/react-query";
import { api, ok } from "../api/client";
import { ErrorNote, IfRole, Loading, Page, time } from "../components/ui";
import { Link } from "../router";

export function Agents() {
  const agents = useQuery({
    queryKey: ["agents"],
    queryFn: async () => ok(await api.GET("/v1/agents", { params: { query: { limit: 500 } } })),
  });
  return (
    <Page
      title="Agents"
      actions={
        <IfRole least="editor">
          <Link to="/agents/new" className="btn-primary no-underline">
            New agent
          </Link>
        </IfRole>
      }
    >
      <ErrorNote error={agents.error} />
      {agents.isPending ? (
        <Loading what="agents" />
      ) : (agents.data?.data ?? []).length === 0 ? (
        <p className="text-muted">No agents yet.</p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Language</th>
              <th scope="col">Model</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {agents.data?.data.map((a) => (
              <tr key={a.id}>
                <td>
                  <Link to={`/agents/${a.id}`}>{a.name}</Link>
                </td>
                <td>{a.language ?? "en"}</td>
                <td>{a.llm ? `${a.llm.provider}${a.llm.model ? ` · ${a.llm.model}` : ""}` : a.rules ? "rules" : "—"}</td>
                <td>{time(a.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}
