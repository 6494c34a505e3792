// A small client-side router over the History API: the server answers every application path
// with index.html, and this picks the page.
import { createContext, useContext, useEffect, useState, type AnchorHTMLAttributes, type ReactNode } from "react";

const PathContext = createContext<string>("/");

/** Goes to `to` without a reload. */
export function navigate(to: string) {
  if (to === location.pathname + location.search) return;
  history.pushState(null, "", to);
  dispatchEvent(new PopStateEvent("popstate"));
}

export function RouterProvider({ children }: { children: ReactNode }) {
  const [path, setPath] = useState(location.pathname + location.search);
  useEffect(() => {
    const update = () => setPath(location.pathname + location.search);
    addEventListener("popstate", update);
    return () => removeEventListener("popstate", update);
  }, []);
  return <PathContext.Provider value={path}>{children}</PathContext.Provider>;
}

/** The current path with its query string. */
export function usePath(): string {
  return useContext(PathContext);
}

/** The current query parameters. */
export function useSearch(): URLSearchParams {
  const path = usePath();
  const at = path.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : path.slice(at));
}

/** An anchor that navigates on the client, keeping middle-click and modifiers working. */
export function Link({ to, children, ...rest }: { to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  return (
    <a
      href={to}
      {...rest}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}
