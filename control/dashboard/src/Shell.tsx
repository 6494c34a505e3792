// The frame around every signed-in page: navigation, workspace switcher, theme and sign-out,
// and the choice of page from the path.
import { lazy, Suspense, useState } from "react";
import { Link, usePath } from "./router";
import { useSession } from "./session";
import { currentTheme, setTheme, type Theme } from "./theme";
import { Overview } from "./pages/Overview";
import { Calls } from "./pages/Calls";
import { CallPage } from "./pages/CallPage";
import { Agents } from "./pages/Agents";
import { AgentEditor } from "./pages/AgentEditor";
import { Workflows } from "./pages/Workflows";
import { Numbers } from "./pages/Numbers";
import { Analytics } from "./pages/Analytics";
import { Edges } from "./pages/Edges";
import { ApiKeys } from "./pages/ApiKeys";
import { Members } from "./pages/Members";
import { AuditLog } from "./pages/AuditLog";
import { Webhooks } from "./pages/Webhooks";
import { Providers } from "./pages/Providers";

// The editor brings @xyflow/react: loaded when first opened, not with the rest.
const WorkflowEditor = lazy(() => import("./pages/WorkflowEditor"));

const NAV: [string, string][] = [
  ["/", "Overview"],
  ["/calls", "Calls"],
  ["/agents", "Agents"],
  ["/workflows", "Workflows"],
  ["/numbers", "Numbers"],
  ["/analytics", "Analytics"],
  ["/edges", "Edges"],
  ["/keys", "API keys"],
  ["/members", "Members"],
  ["/audit", "Audit log"],
  ["/webhooks", "Webhooks"],
  ["/providers", "Providers"],
];

function route(path: string) {
  const [p] = path.split("?");
  const parts = p.split("/").filter(Boolean);
  switch (parts[0]) {
    case undefined:
      return <Overview />;
    case "calls":
      return parts[1] ? <CallPage id={parts[1]} /> : <Calls />;
    case "agents":
      return parts[1] ? <AgentEditor id={parts[1] === "new" ? null : parts[1]} /> : <Agents />;
    case "workflows":
      return parts[1] ? (
        <Suspense fallback={<p className="text-muted text-sm">Loading the editor…</p>}>
          <WorkflowEditor key={parts[1]} id={parts[1] === "new" ? null : parts[1]} />
        </Suspense>
      ) : (
        <Workflows />
      );
    case "numbers":
      return <Numbers />;
    case "analytics":
      return <Analytics />;
    case "edges":
      return <Edges />;
    case "keys":
      return <ApiKeys />;
    case "members":
      return <Members />;
    case "audit":
      return <AuditLog />;
    case "webhooks":
      return <Webhooks />;
    case "providers":
      return <Providers />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>
            There is no page at <code>{p}</code>. <Link to="/">Back to the overview</Link>.
          </p>
        </section>
      );
  }
}

export function Shell() {
  const path = usePath();
  const session = useSession();
  const [theme, setThemeState] = useState<Theme>(currentTheme());
  const section = "/" + (path.split("?")[0].split("/")[1] ?? "");
  return (
    <div className="min-h-screen md:flex">
      <header className="md:w-52 md:min-h-screen shrink-0 border-b md:border-b-0 md:border-r border-slate-200 dark:border-slate-800 p-4 flex flex-col gap-4">
        <Link to="/" className="text-lg font-bold no-underline text-slate-900 dark:text-white">
          Freya
        </Link>
        <div>
          <label htmlFor="workspace" className="label">
            Workspace
          </label>
          <select
            id="workspace"
            className="input"
            value={session.workspace?.id ?? ""}
            onChange={(e) => session.chooseWorkspace(e.target.value)}
          >
            {session.workspaces.map((w) => (
              <option key={w.id} value={w.id}>
                {w.name}
              </option>
            ))}
          </select>
          <p className="mt-1 text-xs text-muted">Your role: {session.role ?? "none"}</p>
        </div>
        <nav aria-label="Main">
          <ul className="flex flex-wrap md:flex-col gap-1">
            {NAV.map(([to, label]) => (
              <li key={to}>
                <Link
                  to={to}
                  aria-current={section === to ? "page" : undefined}
                  className={
                    "block rounded px-2 py-1 text-sm no-underline " +
                    (section === to
                      ? "bg-indigo-50 text-indigo-800 dark:bg-indigo-950 dark:text-indigo-200 font-medium"
                      : "text-slate-700 dark:text-slate-300 hover:bg-slate-100 dark:hover:bg-slate-900")
                  }
                >
                  {label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="mt-auto flex flex-col gap-2 text-sm">
          <span className="text-muted break-all">{session.email}</span>
          <button
            className="btn"
            onClick={() => {
              const next = theme === "dark" ? "light" : "dark";
              setTheme(next);
              setThemeState(next);
            }}
          >
            {theme === "dark" ? "Light theme" : "Dark theme"}
          </button>
          <button className="btn" onClick={session.signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main className="flex-1 p-6 min-w-0">{route(path)}</main>
    </div>
  );
}
