// The typed API client: openapi-fetch over the types generated from /openapi.json
// (src/api/schema.d.ts, `npm run gen`). Every request carries the signed-in person's token and
// the chosen workspace; failures become `ApiError`s holding the problem+json body.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Role = Schemas["Role"];
export type Problem = Schemas["Problem"];

/** Where the request middleware reads the session from; set by the session provider. */
export const credentials: {
  token: string | null;
  workspace: string | null;
  onUnauthorized: () => void;
  /** A 403: the person's role may have changed since the page read it. */
  onForbidden: () => void;
} = {
  token: null,
  workspace: null,
  onUnauthorized: () => {},
  onForbidden: () => {},
};

const attach: Middleware = {
  onRequest({ request }) {
    if (credentials.token) request.headers.set("Authorization", `Bearer ${credentials.token}`);
    if (credentials.workspace && !request.headers.has("X-Workspace-Id")) {
      request.headers.set("X-Workspace-Id", credentials.workspace);
    }
    return request;
  },
  onResponse({ response, request }) {
    if (response.status === 401 && !request.url.endsWith("/v1/auth/login")) credentials.onUnauthorized();
    if (response.status === 403) credentials.onForbidden();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: "" });
api.use(attach);

/** A failed request: its status and the API's problem, to show next to what caused it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Partial<Problem>,
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
  }

  /** The message for one field (`system_prompt`, `llm.model`), if the API named it. */
  field(name: string): string | undefined {
    return this.problem.errors?.find((e) => e.field === name || e.field.startsWith(`${name}.`) || e.field.startsWith(`${name}[`))
      ?.message;
  }
}

/** The data of an answer, or an `ApiError`. */
export function ok<T>(answer: { data?: T; error?: unknown; response: Response }): T {
  if (answer.error !== undefined || !answer.response.ok) {
    const problem = (answer.error ?? {}) as Partial<Problem>;
    throw new ApiError(answer.response.status, typeof problem === "object" ? problem : { detail: String(problem) });
  }
  return answer.data as T;
}

const ranks: Record<Role, number> = { viewer: 0, editor: 1, admin: 2, owner: 3 };

/** Whether `role` may do what `least` may. */
export function atLeast(role: Role | null | undefined, least: Role): boolean {
  return role != null && ranks[role] >= ranks[least];
}

/** The roles someone with `role` may give a key or a member: their own and those below it. */
export function grantable(role: Role | null | undefined): Role[] {
  return (Object.keys(ranks) as Role[]).filter((r) => atLeast(role, r));
}
