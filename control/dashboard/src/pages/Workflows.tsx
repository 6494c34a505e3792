// Workflows: the list, publishing, and each one's version history. The visual editor is not
// built yet; workflows are written through the API (`/v1/workflows`).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, atLeast, ok } from "../api/client";
import { ErrorNote, Loading, Page, time } from "../components/ui";
import { useSession } from "../session";

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
    <Page title="Workflows">
      <p role="note" className="card text-sm mb-4 max-w-2xl">
        The visual workflow editor is not built yet. Workflows are written through the API (<code>POST /v1/workflows</code>,
        checked by <code>/v1/workflows/validate</code>); here you can publish them and read their history.
      </p>
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
                  <div className="font-medium">{String((w as { name?: string }).name ?? w.id)}</div>
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
