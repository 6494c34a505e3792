// An agent as its form holds it (text in every input) and back to the API's `AgentSpec`.
// Secrets are write-only: the API reads them back as `********`, the form shows an empty
// input, and an empty input sends the mask back, which keeps the stored secret.
import type { Schemas } from "../api/client";

type Spec = Schemas["AgentSpec"];
type Provider = Schemas["PipelineProvider"];

export const MASK = "********";
export const PIPELINE = ["llm", "llm_fallback", "stt", "tts"] as const;
export type Slot = (typeof PIPELINE)[number];

export interface ProviderDraft {
  provider: string;
  model: string;
  voice: string;
  base_url: string;
  api_key: string;
  hasKey: boolean;
  temperature: string;
  max_tokens: string;
  timeout_ms: string;
}

export interface Draft {
  name: string;
  system_prompt: string;
  first_message: string;
  language: string;
  record: boolean;
  max_call_seconds: string;
  silence_reprompt_seconds: string;
  end_call_phrases: string;
  transfer_destinations: string;
  variables: string;
  barge_in: "" | "true" | "false";
  barge_in_min_speech_ms: string;
  end_of_turn_silence_ms: string;
  stt_endpointing: boolean;
  providers: Record<Slot, ProviderDraft>;
  tool_secret: string;
  hasToolSecret: boolean;
  tools: string;
  rules: string;
}

const str = (v: unknown) => (v == null ? "" : String(v));

function providerDraft(p?: Provider | null): ProviderDraft {
  return {
    provider: str(p?.provider),
    model: str(p?.model),
    voice: str(p?.voice),
    base_url: str(p?.base_url),
    api_key: "",
    hasKey: p?.api_key === MASK,
    temperature: str(p?.temperature),
    max_tokens: str(p?.max_tokens),
    timeout_ms: str(p?.timeout_ms),
  };
}

export function draftOf(a?: Spec): Draft {
  return {
    name: str(a?.name),
    system_prompt: str(a?.system_prompt),
    first_message: str(a?.first_message),
    language: str(a?.language),
    record: a?.record === true,
    max_call_seconds: str(a?.max_call_seconds),
    silence_reprompt_seconds: str(a?.silence_reprompt_seconds),
    end_call_phrases: (a?.end_call_phrases ?? []).join("\n"),
    transfer_destinations: (a?.transfer_destinations ?? []).join("\n"),
    variables: Object.entries(a?.variables ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join("\n"),
    barge_in: a?.turn?.barge_in == null ? "" : a.turn.barge_in ? "true" : "false",
    barge_in_min_speech_ms: str(a?.turn?.barge_in_min_speech_ms),
    end_of_turn_silence_ms: str(a?.turn?.end_of_turn_silence_ms),
    stt_endpointing: a?.turn?.stt_endpointing === true,
    providers: {
      llm: providerDraft(a?.llm),
      llm_fallback: providerDraft(a?.llm_fallback),
      stt: providerDraft(a?.stt),
      tts: providerDraft(a?.tts),
    },
    tool_secret: "",
    hasToolSecret: a?.tool_secret === MASK,
    tools: a?.tools ? JSON.stringify(a.tools, null, 2) : "",
    rules: a?.rules ? JSON.stringify(a.rules, null, 2) : "",
  };
}

/** A mistake found before asking the API, named like the API names fields. */
export class DraftError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

const text = (v: string) => (v.trim() === "" ? null : v);
const lines = (v: string) => {
  const all = v
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  return all.length ? all : null;
};

function int(field: string, v: string): number | null {
  if (v.trim() === "") return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new DraftError(field, "must be a whole number, 0 or more");
  return n;
}

function json(field: string, v: string): unknown {
  if (v.trim() === "") return null;
  try {
    return JSON.parse(v);
  } catch (e) {
    throw new DraftError(field, `is not valid JSON: ${(e as Error).message}`);
  }
}

function providerSpec(slot: Slot, p: ProviderDraft): Provider | null {
  if (p.provider.trim() === "") return null;
  const temperature = p.temperature.trim() === "" ? null : Number(p.temperature);
  if (temperature != null && Number.isNaN(temperature)) throw new DraftError(`${slot}.temperature`, "must be a number");
  return {
    provider: p.provider.trim(),
    model: text(p.model),
    voice: text(p.voice),
    base_url: text(p.base_url),
    api_key: p.api_key !== "" ? p.api_key : p.hasKey ? MASK : null,
    temperature,
    max_tokens: int(`${slot}.max_tokens`, p.max_tokens),
    timeout_ms: int(`${slot}.timeout_ms`, p.timeout_ms),
  };
}

/** The spec to send; absent values are `null`, which a merge patch reads as "remove". */
export function specOf(d: Draft): Spec {
  const variables: Record<string, string> = {};
  for (const line of lines(d.variables) ?? []) {
    const at = line.indexOf("=");
    if (at < 1) throw new DraftError("variables", `"${line}" is not name=value`);
    variables[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  const turn = {
    barge_in: d.barge_in === "" ? null : d.barge_in === "true",
    barge_in_min_speech_ms: int("turn.barge_in_min_speech_ms", d.barge_in_min_speech_ms),
    end_of_turn_silence_ms: int("turn.end_of_turn_silence_ms", d.end_of_turn_silence_ms),
    stt_endpointing: d.stt_endpointing ? true : null,
  };
  const anyTurn = Object.values(turn).some((v) => v != null);
  return {
    name: d.name.trim(),
    system_prompt: text(d.system_prompt),
    first_message: text(d.first_message),
    language: text(d.language),
    record: d.record ? true : null,
    max_call_seconds: int("max_call_seconds", d.max_call_seconds),
    silence_reprompt_seconds: int("silence_reprompt_seconds", d.silence_reprompt_seconds),
    end_call_phrases: lines(d.end_call_phrases),
    transfer_destinations: lines(d.transfer_destinations),
    variables: Object.keys(variables).length ? variables : null,
    turn: anyTurn ? turn : null,
    llm: providerSpec("llm", d.providers.llm),
    llm_fallback: providerSpec("llm_fallback", d.providers.llm_fallback),
    stt: providerSpec("stt", d.providers.stt),
    tts: providerSpec("tts", d.providers.tts),
    tool_secret: d.tool_secret !== "" ? d.tool_secret : d.hasToolSecret ? MASK : null,
    tools: json("tools", d.tools) as Spec["tools"],
    rules: json("rules", d.rules) as Spec["rules"],
  };
}

/** The spec without its `null`s: a create takes absence, not `null`, for "not set". */
export function withoutNulls<T>(value: T): T {
  if (Array.isArray(value)) return value.map(withoutNulls) as T;
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => [k, withoutNulls(v)]),
    ) as T;
  }
  return value;
}
