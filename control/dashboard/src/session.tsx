// The signed-in person: their token (memory, mirrored in sessionStorage so a reload keeps it
// and closing the tab forgets it), refreshed a minute before it expires, and the workspace
// they act in with their role there.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { api, credentials, ok, type Role, type Schemas } from "./api/client";

const TOKEN_KEY = "freya.session";
const WORKSPACE_KEY = "freya.workspace";

interface Stored {
  token: string;
  expiresAt: string;
  email: string;
}

interface Session {
  email: string;
  workspaces: Schemas["WorkspaceView"][];
  workspace: Schemas["WorkspaceView"] | null;
  role: Role | null;
  chooseWorkspace: (id: string) => void;
  signOut: () => void;
}

const SessionContext = createContext<Session | null>(null);

function load(): Stored | null {
  try {
    const raw = sessionStorage.getItem(TOKEN_KEY);
    const stored = raw ? (JSON.parse(raw) as Stored) : null;
    return stored && Date.parse(stored.expiresAt) > Date.now() ? stored : null;
  } catch {
    return null;
  }
}

/** Signs in; the caller stores what comes back with `remember`. */
export async function signIn(email: string, password: string): Promise<Stored> {
  const token = ok(await api.POST("/v1/auth/login", { body: { email, password } }));
  return { token: token.token, expiresAt: token.expires_at, email };
}

type SignedOut = (done: (s: Stored) => void) => ReactNode;

/** Shows `signedOut` until someone signs in, then `children` with the session. */
export function SessionProvider({ signedOut, children }: { signedOut: SignedOut; children: ReactNode }) {
  const [stored, setStored] = useState<Stored | null>(() => load());
  const queryClient = useQueryClient();
  credentials.token = stored?.token ?? null;

  const remember = useCallback((s: Stored | null) => {
    if (s) sessionStorage.setItem(TOKEN_KEY, JSON.stringify(s));
    else {
      sessionStorage.removeItem(TOKEN_KEY);
      sessionStorage.removeItem(WORKSPACE_KEY);
    }
    credentials.token = s?.token ?? null;
    setStored(s);
  }, []);

  const signOut = useCallback(() => {
    remember(null);
    credentials.workspace = null;
    queryClient.clear();
  }, [remember, queryClient]);
  credentials.onUnauthorized = signOut;

  // Refresh a minute before expiry (at once if that has passed).
  useEffect(() => {
    if (!stored) return;
    const wait = Math.max(0, Date.parse(stored.expiresAt) - Date.now() - 60_000);
    const timer = setTimeout(async () => {
      const answer = await api.POST("/v1/auth/refresh", { params: { header: {} as { "X-Workspace-Id": string } } });
      if (answer.data) remember({ ...stored, token: answer.data.token, expiresAt: answer.data.expires_at });
      else signOut();
    }, wait);
    return () => clearTimeout(timer);
  }, [stored, remember, signOut]);

  if (!stored) return <>{signedOut(remember)}</>;
  return (
    <SignedIn email={stored.email} signOut={signOut}>
      {children}
    </SignedIn>
  );
}

function SignedIn({ email, signOut, children }: { email: string; signOut: () => void; children: ReactNode }) {
  const queryClient = useQueryClient();
  const workspaces = useQuery({
    queryKey: ["workspaces"],
    queryFn: async () => ok(await api.GET("/v1/workspaces")).data,
  });
  const [chosen, setChosen] = useState<string | null>(() => sessionStorage.getItem(WORKSPACE_KEY));
  const list = workspaces.data ?? [];
  const workspace = list.find((w) => w.id === chosen) ?? list[0] ?? null;
  credentials.workspace = workspace?.id ?? null;
  // A refusal may mean the role changed since the list was read: read it again, and the
  // controls follow (the refusal itself is shown where it happened).
  credentials.onForbidden = () => void queryClient.invalidateQueries({ queryKey: ["workspaces"] });

  const chooseWorkspace = useCallback(
    (id: string) => {
      sessionStorage.setItem(WORKSPACE_KEY, id);
      credentials.workspace = id;
      setChosen(id);
      queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== "workspaces" });
    },
    [queryClient],
  );

  const session = useMemo<Session>(
    () => ({ email, workspaces: list, workspace, role: workspace?.role ?? null, chooseWorkspace, signOut }),
    [email, list, workspace, chooseWorkspace, signOut],
  );
  if (workspaces.isPending) return <p className="p-8 text-muted">Loading…</p>;
  if (workspaces.isError) {
    return (
      <p role="alert" className="p-8">
        Could not list your workspaces: {workspaces.error.message}.{" "}
        <button className="btn" onClick={signOut}>
          Sign out
        </button>
      </p>
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <div key={workspace?.id ?? "none"} className="contents">
        {children}
      </div>
    </SessionContext.Provider>
  );
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in page");
  return session;
}
