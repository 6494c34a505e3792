// Reading a call's record: its per-turn latency (the `call.turn_latency` events) and the
// agents' names, shared by the calls table and a call's page.
import { useQuery } from "@tanstack/react-query";
import { api, ok, type Schemas } from "./api/client";

/** One reply's timing, each stage in ms after the end of the caller's speech. */
export interface TurnLatency {
  at: string;
  endpointing_ms: number;
  stt_ms: number;
  llm_first_token_ms: number;
  tts_first_byte_ms: number;
  first_rtp_ms: number;
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

export function turnLatencies(call: Schemas["CallDetail"]): TurnLatency[] {
  return call.events
    .filter((e) => e.kind === "call.turn_latency" && e.payload && typeof e.payload === "object")
    .map((e) => {
      const p = e.payload as Record<string, unknown>;
      return {
        at: e.at,
        endpointing_ms: num(p.endpointing_ms),
        stt_ms: num(p.stt_ms),
        llm_first_token_ms: num(p.llm_first_token_ms),
        tts_first_byte_ms: num(p.tts_first_byte_ms),
        first_rtp_ms: num(p.first_rtp_ms),
      };
    });
}

/** Settled: ended, and either recorded or ended long enough ago that no upload is coming. */
function settled(call: Schemas["CallDetail"] | undefined): boolean {
  if (!call?.ended_at) return false;
  return call.recording != null || Date.now() - Date.parse(call.ended_at) > 120_000;
}

/** A call's record; `watch` polls it while it is live or its recording may still arrive. */
export function useCall(id: string, watch = true) {
  return useQuery({
    queryKey: ["call", id],
    queryFn: async () => ok(await api.GET("/v1/calls/{id}", { params: { path: { id } } })),
    refetchInterval: (q) => (watch && q.state.data && !settled(q.state.data) ? 3_000 : false),
    // An ended call's transcript and timings never change.
    staleTime: (q) => (q.state.data?.ended_at ? Infinity : 2_000),
  });
}

export function useAgentNames() {
  const agents = useQuery({
    queryKey: ["agents"],
    queryFn: async () => ok(await api.GET("/v1/agents", { params: { query: { limit: 500 } } })),
  });
  return new Map((agents.data?.data ?? []).map((a) => [a.id, a.name]));
}

/** One transcript line, as `GET /v1/calls/{id}` gives it. */
export interface Line {
  at: string;
  role: string;
  text: string;
  start_ms?: number;
  end_ms?: number;
  interrupted?: boolean;
}

export function transcript(call: Schemas["CallDetail"]): Line[] {
  return call.transcript
    .filter((t): t is Record<string, unknown> => !!t && typeof t === "object")
    .map((t) => ({
      at: String(t.at ?? ""),
      role: String(t.role ?? ""),
      text: String(t.text ?? ""),
      start_ms: typeof t.start_ms === "number" ? t.start_ms : undefined,
      end_ms: typeof t.end_ms === "number" ? t.end_ms : undefined,
      interrupted: t.interrupted === true,
    }));
}
