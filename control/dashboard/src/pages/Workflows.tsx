// Workflows: the list, publishing, and each one's version history with the diff between two
// versions (`WorkflowDiff.tsx`); each opens in the visual editor (`WorkflowEditor.tsx`).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, atLeast, ok } from "../api/client";
import { ErrorNote, Loading, Page, time } from "../components/ui";
import { Link } from "../router";
import { useSession } from "../session";
import { WorkflowDiff } from "./WorkflowDiff";

function Versions({ id }: { id: string }) {
  const versions = useQuery({
    queryKey: ["workflow-versions", id],
    queryFn: async () => ok(await api.GET("/v1/workflows/{id}/versions", { params: { path: { id } } })),
  });
  if (versions.isPending) return <Loading what="versions" />;
  return (
    <>
      <ErrorNote error={versions.error} />
      {(versions.data?.data ?? []).length === 0 ? (
        <p className="text-sm text-muted">Never published.</p>
      ) : (
        <ol className="text-sm">
          {versions.data?.data.map((v) => (
            <li key={v.version}>
              Version {v.version}, published {time(v.published_at)} by {v.published_by}
            </li>
          ))}
        </ol>
      )}
      <WorkflowDiff key={versions.data?.data.length} versions={versions.data?.data ?? []} />
    </>
  );
}

export function Workflows() {
  const { role } = useSession();
  const queryClient = useQueryClient();
  const [open, setOpen] = useState<string | null>(null);
  const workflows = useQuery({
    queryKey: ["workflows"],
    queryFn: async () => ok(await api.GET("/v1/workflows", { params: { query: { limit: 500 } } })),
  });
  const publish = useMutation({
    mutationFn: async (id: string) => ok(await api.POST("/v1/workflows/{id}/publish", { params: { path: { id } } })),
    onSuccess: (_, id) => {
      void queryClient.invalidateQueries({ queryKey: ["workflows"] });
      void queryClient.invalidateQueries({ queryKey: ["workflow-versions", id] });
    },
  });
  return (
    <Page
      title="Workflows"
      actions={
        atLeast(role, "editor") && (
          <Link to="/workflows/new" className="btn-primary no-underline">
            New workflow
          </Link>
        )
      }
    >
      <ErrorNote error={workflows.error ?? publish.error} />
      {workflows.isPending ? (
        <Loading what="workflows" />
      ) : (workflows.data?.data ?? []).length === 0 ? (
        <p className="text-muted">No workflows.</p>
      ) : (
        <ul className="flex flex-col gap-3">
          {workflows.data?.data.map((w) => (
            <li key={w.id} className="card">
              <div className="flex justify-between items-center gap-2">
                <div>
                  <Link to={`/workflows/${w.id}`} className="font-medium">
                    {w.name}
                  </Link>
                  <div className="text-xs text-muted">
                    {w.latest_version == null ? "draft, never published" : `latest version ${w.latest_version}`} · updated {time(w.updated_at)}
                  </div>
                </div>
                <div className="flex gap-2">
                  {atLeast(role, "editor") && (
                    <button className="btn" onClick={() => publish.mutate(w.id)} disabled={publish.isPending}>
                      Publish
                    </button>
                  )}
                  <button className="btn" aria-expanded={open === w.id} onClick={() => setOpen(open === w.id ? null : w.id)}>
                    History
                  </button>
                </div>
              </div>
              {open === w.id && (
                <div className="mt-3">
                  <Versions id={w.id} />
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
    </Page>
  );
}
