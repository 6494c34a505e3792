// Small building blocks every page uses: the page frame, errors explained, fields with the
// API's message under them, times and durations.
import type { ReactNode } from "react";
import { ApiError, atLeast, type Role } from "../api/client";
import { useSession } from "../session";

export function Page({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <section aria-labelledby="page-title">
      <div className="flex items-center justify-between gap-4">
        <h1 id="page-title">{title}</h1>
        <div className="flex gap-2">{actions}</div>
      </div>
      {children}
    </section>
  );
}

/** A failed request said in words; a 403 says which role is needed instead of hiding it. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  let text: string;
  if (error instanceof ApiError && error.status === 403) {
    text = `Your role does not allow this: ${error.message}. Ask an admin of the workspace for a higher role.`;
  } else if (error instanceof ApiError && error.status === 404) {
    text = `Not found: ${error.message}.`;
  } else if (error instanceof Error) {
    text = error.message;
  } else text = String(error);
  return (
    <p role="alert" className="my-2 rounded-md border border-red-300 dark:border-red-800 bg-red-50 dark:bg-red-950 px-3 py-2 text-sm text-red-800 dark:text-red-200">
      {text}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return <p className="text-muted text-sm">Loading {what}…</p>;
}

/** Shows `children` only when the person's role is at least `least`. */
export function IfRole({ least, children }: { least: Role; children: ReactNode }) {
  const { role } = useSession();
  return atLeast(role, least) ? <>{children}</> : null;
}

/**
 * Why a page shows nothing: the person's role is below what the API asks for it. Said in place
 * of asking the API for an answer that can only be a 403.
 */
export function RoleNote({ least, what }: { least: Role; what: string }) {
  const { role } = useSession();
  return (
    <p role="note" className="my-2 rounded-md border border-slate-300 dark:border-slate-700 px-3 py-2 text-sm">
      Only {least === "admin" ? "an admin or owner" : `a member with the ${least} role or higher`} of the workspace can {what}; your role is{" "}
      {role ?? "none"}. Ask an admin of the workspace if you need it.
    </p>
  );
}

/** A labelled input with the API's message for it underneath. */
export function Field({
  label,
  name,
  error,
  hint,
  children,
}: {
  label: string;
  name: string;
  error?: ApiError | null;
  hint?: string;
  children: (props: { id: string; "aria-invalid"?: boolean; "aria-describedby"?: string }) => ReactNode;
}) {
  const id = `field-${name}`;
  const message = error?.field(name);
  const describedBy = [message ? `${id}-error` : null, hint ? `${id}-hint` : null].filter(Boolean).join(" ") || undefined;
  return (
    <div className="mb-3">
      <label className="label" htmlFor={id}>
        {label}
      </label>
      {children({ id, "aria-invalid": message ? true : undefined, "aria-describedby": describedBy })}
      {hint && (
        <p id={`${id}-hint`} className="mt-1 text-xs text-muted">
          {hint}
        </p>
      )}
      {message && (
        <p id={`${id}-error`} className="field-error">
          {message}
        </p>
      )}
    </div>
  );
}

export function time(at?: string | null): string {
  if (!at) return "—";
  const d = new Date(at);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function duration(ms?: number | null): string {
  if (ms == null) return "—";
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

export function callDuration(c: { answered_at?: string | null; ended_at?: string | null }): string {
  if (!c.answered_at) return "—";
  const end = c.ended_at ? Date.parse(c.ended_at) : Date.now();
  return duration(end - Date.parse(c.answered_at));
}
