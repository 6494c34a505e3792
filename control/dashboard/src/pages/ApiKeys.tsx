// The workspace's API keys: create one (its secret shown once, here), revoke one.
import * as Dialog from "@radix-ui/react-dialog";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, ApiError, atLeast, grantable, ok, type Role, type Schemas } from "../api/client";
import { ErrorNote, Field, Loading, Page, RoleNote, time } from "../components/ui";
import { useSession } from "../session";

export function ApiKeys() {
  const { role } = useSession();
  return (
    <Page title="API keys">
      <p className="text-sm text-muted mb-4 max-w-2xl">
        A key acts in this workspace with its role, for programs that call the API. Its secret is shown once, when it is created.
      </p>
      {atLeast(role, "admin") ? <Keys /> : <RoleNote least="admin" what="list, create or revoke keys" />}
    </Page>
  );
}

/** The keys, the form for a new one and the dialog showing its secret once; for admins. */
function Keys() {
  const { workspace, role } = useSession();
  const workspace_id = workspace?.id ?? "";
  const queryClient = useQueryClient();
  const [created, setCreated] = useState<Schemas["CreatedKey"] | null>(null);
  const keys = useQuery({
    queryKey: ["keys"],
    queryFn: async () => ok(await api.GET("/v1/workspaces/{workspace_id}/api-keys", { params: { path: { workspace_id } } })),
  });
  const create = useMutation({
    mutationFn: async (body: Schemas["NewKey"]) =>
      ok(await api.POST("/v1/workspaces/{workspace_id}/api-keys", { params: { path: { workspace_id } }, body })),
    onSuccess: (key) => {
      setCreated(key);
      void queryClient.invalidateQueries({ queryKey: ["keys"] });
    },
  });
  const revoke = useMutation({
    mutationFn: async (key_id: string) =>
      ok(await api.DELETE("/v1/workspaces/{workspace_id}/api-keys/{key_id}", { params: { path: { workspace_id, key_id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["keys"] }),
  });

  function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    create.mutate({ name: String(form.get("name") ?? ""), role: String(form.get("role")) as Role });
    e.currentTarget.reset();
  }

  return (
    <>
      <form onSubmit={submit} className="flex flex-wrap items-end gap-3 mb-4" aria-label="New API key">
        <Field label="Key name" name="name" error={create.error instanceof ApiError ? create.error : null}>
          {(p) => <input {...p} name="name" required className="input w-56" />}
        </Field>
        <Field label="Key role" name="role" error={create.error instanceof ApiError ? create.error : null}>
          {(p) => (
            <select {...p} name="role" className="input w-36" defaultValue="editor">
              {grantable(role).map((r) => (
                <option key={r}>{r}</option>
              ))}
            </select>
          )}
        </Field>
        <button type="submit" className="btn-primary mb-3" disabled={create.isPending}>
          Create key
        </button>
      </form>
      <ErrorNote error={keys.error ?? create.error ?? revoke.error} />
      <Dialog.Root open={created != null} onOpenChange={(open) => !open && setCreated(null)}>
        <Dialog.Portal>
          <Dialog.Overlay className="fixed inset-0 bg-black/40" />
          <Dialog.Content className="fixed left-1/2 top-1/3 -translate-x-1/2 w-[min(90vw,32rem)] card bg-white dark:bg-slate-950">
            <Dialog.Title className="font-semibold mb-2">Key “{created?.name}” created</Dialog.Title>
            <Dialog.Description className="text-sm mb-3">Copy it now: it will not be shown again.</Dialog.Description>
            <label htmlFor="new-key" className="label">
              Secret
            </label>
            <input id="new-key" readOnly value={created?.key ?? ""} className="input font-mono" onFocus={(e) => e.currentTarget.select()} />
            <div className="mt-4 flex gap-2 justify-end">
              <button className="btn" onClick={() => created && void navigator.clipboard?.writeText(created.key)}>
                Copy
              </button>
              <Dialog.Close className="btn-primary">Done</Dialog.Close>
            </div>
          </Dialog.Content>
        </Dialog.Portal>
      </Dialog.Root>
      {keys.isPending ? (
        <Loading what="keys" />
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {keys.data?.data.map((k) => (
              <tr key={k.id}>
                <td>{k.name}</td>
                <td className="font-mono">{k.prefix}…</td>
                <td>{k.role}</td>
                <td>{time(k.created_at)}</td>
                <td>{time(k.last_used_at)}</td>
                <td>
                  {k.revoked_at ? (
                    <span className="badge">revoked</span>
                  ) : atLeast(role, k.role) ? (
                    <button
                      className="btn-danger"
                      aria-label={`Revoke ${k.name}`}
                      disabled={revoke.isPending}
                      onClick={() => confirm(`Revoke the key “${k.name}”? Programs using it will be refused.`) && revoke.mutate(k.id)}
                    >
                      Revoke
                    </button>
                  ) : (
                    <span className="badge" title={`Only a member with the ${k.role} role or higher can revoke it`}>
                      active
                    </span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
