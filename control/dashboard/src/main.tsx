import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { ApiError } from "./api/client";
import "./index.css";
import { RouterProvider } from "./router";
import { SessionProvider } from "./session";
import { Shell } from "./Shell";
import { SignIn } from "./pages/SignIn";
import { applyTheme } from "./theme";

applyTheme();

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 10_000,
      // A refusal will not change by asking again.
      retry: (count, error) => !(error instanceof ApiError && error.status < 500) && count < 2,
    },
  },
});

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <RouterProvider>
          <SessionProvider signedOut={(done) => <SignIn onSignedIn={done} />}>
            <Shell />
          </SessionProvider>
        </RouterProvider>
      </QueryClientProvider>
    </StrictMode>,
  );
}
