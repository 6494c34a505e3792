// The people of the workspace: invite by email, change a role, remove.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { api, ApiError, atLeast, grantable, ok, type Role } from "../api/client";
import { ErrorNote, Field, Loading, Page, time } from "../components/ui";
import { useSession } from "../session";

export function Members() {
  const { workspace, role } = useSession();
  const workspace_id = workspace?.id ?? "";
  const queryClient = useQueryClient();
  const done = () => queryClient.invalidateQueries({ queryKey: ["members"] });
  const members = useQuery({
    queryKey: ["members"],
    queryFn: async () => ok(await api.GET("/v1/workspaces/{workspace_id}/members", { params: { path: { workspace_id } } })),
  });
  const invite = useMutation({
    mutationFn: async (body: { email: string; role: Role }) =>
      ok(await api.POST("/v1/workspaces/{workspace_id}/members", { params: { path: { workspace_id } }, body })),
    onSuccess: done,
  });
  const change = useMutation({
    mutationFn: async ({ user_id, role }: { user_id: string; role: Role }) =>
      ok(await api.PATCH("/v1/workspaces/{workspace_id}/members/{user_id}", { params: { path: { workspace_id, user_id } }, body: { role } })),
    onSuccess: done,
  });
  const remove = useMutation({
    mutationFn: async (user_id: string) =>
      ok(await api.DELETE("/v1/workspaces/{workspace_id}/members/{user_id}", { params: { path: { workspace_id, user_id } } })),
    onSuccess: done,
  });
  const admin = atLeast(role, "admin");
  // A member above the person's own role is theirs to read, not to change or remove.
  const manages = (member: Role) => admin && atLeast(role, member);

  function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    invite.mutate({ email: String(form.get("email")), role: String(form.get("role")) as Role });
  }

  return (
    <Page title="Members">
      {admin && (
        <form onSubmit={submit} className="flex flex-wrap items-end gap-3 mb-4" aria-label="Add a member">
          <Field label="Member email" name="email" error={invite.error instanceof ApiError ? invite.error : null}>
            {(p) => <input {...p} name="email" type="email" required className="input w-64" />}
          </Field>
          <Field label="Member role" name="role" error={invite.error instanceof ApiError ? invite.error : null}>
            {(p) => (
              <select {...p} name="role" className="input w-36" defaultValue="viewer">
                {grantable(role).map((r) => (
                  <option key={r}>{r}</option>
                ))}
              </select>
            )}
          </Field>
          <button className="btn-primary mb-3" type="submit">
            Add member
          </button>
        </form>
      )}
      <ErrorNote error={members.error ?? invite.error ?? change.error ?? remove.error} />
      {members.isPending ? (
        <Loading what="members" />
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">Added</th>
              {admin && <th scope="col">Remove</th>}
            </tr>
          </thead>
          <tbody>
            {members.data?.data.map((m) => (
              <tr key={m.user_id}>
                <td>{m.name}</td>
                <td>{m.email}</td>
                <td>
                  {manages(m.role) ? (
                    <select
                      aria-label={`Role of ${m.email}`}
                      className="input w-32"
                      value={m.role}
                      onChange={(e) => change.mutate({ user_id: m.user_id, role: e.target.value as Role })}
                    >
                      {grantable(role).map((r) => (
                        <option key={r}>{r}</option>
                      ))}
                    </select>
                  ) : (
                    m.role
                  )}
                </td>
                <td>{time(m.added_at)}</td>
                {admin && (
                  <td>
                    {manages(m.role) && (
                      <button className="btn-danger" aria-label={`Remove ${m.email}`} onClick={() => confirm(`Remove ${m.email} from the workspace?`) && remove.mutate(m.user_id)}>
                        Remove
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}
