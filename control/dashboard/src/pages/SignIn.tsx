import { useState, type FormEvent } from "react";
import { ApiError } from "../api/client";
import { signIn } from "../session";

type Stored = Awaited<ReturnType<typeof signIn>>;

export function SignIn({ onSignedIn }: { onSignedIn: (s: Stored) => void }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await signIn(String(form.get("email")), String(form.get("password"))));
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? "Wrong email or password."
          : err instanceof ApiError && err.status === 429
            ? "Too many attempts; wait a minute and try again."
            : err instanceof Error
              ? err.message
              : String(err),
      );
      setBusy(false);
    }
  }

  return (
    <main className="min-h-screen grid place-items-center p-6">
      <form onSubmit={submit} className="card w-full max-w-sm" aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sign in to Freya</h1>
        <div className="mb-3">
          <label className="label" htmlFor="email">
            Email
          </label>
          <input id="email" name="email" type="email" autoComplete="username" required className="input" />
        </div>
        <div className="mb-4">
          <label className="label" htmlFor="password">
            Password
          </label>
          <input id="password" name="password" type="password" autoComplete="current-password" required className="input" />
        </div>
        {error && (
          <p role="alert" className="field-error mb-3">
            {error}
          </p>
        )}
        <button type="submit" className="btn-primary w-full justify-center" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
