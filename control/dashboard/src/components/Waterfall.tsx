// The latency of each reply as stacked bars: end of speech → end of turn detected → transcript
// (STT) → the model's first token → the synthesizer's first byte → the first audio packet.
import type { TurnLatency } from "../calls";

const STAGES: { key: keyof TurnLatency; label: string; color: string }[] = [
  { key: "endpointing_ms", label: "End of turn", color: "bg-slate-400" },
  { key: "stt_ms", label: "STT", color: "bg-sky-500" },
  { key: "llm_first_token_ms", label: "LLM first token", color: "bg-violet-500" },
  { key: "tts_first_byte_ms", label: "TTS first byte", color: "bg-amber-500" },
  { key: "first_rtp_ms", label: "First audio", color: "bg-emerald-600" },
];

export function Waterfall({ turns }: { turns: TurnLatency[] }) {
  if (turns.length === 0) return <p className="text-muted text-sm">No reply timings were recorded for this call.</p>;
  const scale = Math.max(...turns.map((t) => t.first_rtp_ms), 1);
  return (
    <div>
      <ul className="flex flex-wrap gap-3 text-xs mb-2" aria-label="Stages">
        {STAGES.map((s) => (
          <li key={s.key} className="flex items-center gap-1">
            <span className={`inline-block w-3 h-3 rounded-sm ${s.color}`} aria-hidden="true" />
            {s.label}
          </li>
        ))}
      </ul>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Reply</th>
            <th scope="col" className="w-2/3">From the end of the caller's speech</th>
            <th scope="col">Voice to voice</th>
          </tr>
        </thead>
        <tbody>
          {turns.map((t, i) => {
            let previous = 0;
            const summary = STAGES.map((s) => `${s.label} at ${t[s.key]} ms`).join(", ");
            return (
              <tr key={t.at + i}>
                <td>{i + 1}</td>
                <td>
                  <div className="relative h-5 w-full bg-slate-100 dark:bg-slate-900 rounded" role="img" aria-label={summary}>
                    {STAGES.map((s) => {
                      const end = Math.max(previous, Number(t[s.key]));
                      const bar = (
                        <div
                          key={s.key}
                          title={`${s.label}: ${t[s.key]} ms`}
                          className={`absolute top-0 h-5 ${s.color}`}
                          style={{ left: `${(100 * previous) / scale}%`, width: `${(100 * (end - previous)) / scale}%` }}
                        />
                      );
                      previous = end;
                      return bar;
                    })}
                  </div>
                </td>
                <td>{t.first_rtp_ms} ms</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
