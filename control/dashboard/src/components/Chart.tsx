// A time-series chart (uPlot: small and fast), redrawn when its data changes.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  label: string;
  color: string;
  values: (number | null)[];
}

/** `times` and `span` in seconds since the epoch; `span` is the range asked for, shown whole. */
export function Chart({ title, times, span, series, unit }: { title: string; times: number[]; span: [number, number]; series: Series[]; unit?: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const dark = document.documentElement.classList.contains("dark");
    const axis = { stroke: dark ? "#cbd5e1" : "#334155", grid: { stroke: dark ? "#1e293b" : "#e2e8f0" } };
    const plot = new uPlot(
      {
        width: Math.max(320, el.clientWidth),
        height: 220,
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, points: { show: true, size: 6 }, value: (_: uPlot, v: number | null) => (v == null ? "—" : `${v}${unit ?? ""}`) }))],
        axes: [axis, axis],
        scales: { x: { time: true, range: () => span } },
      },
      [times, ...series.map((s) => s.values)] as uPlot.AlignedData,
      el,
    );
    return () => plot.destroy();
  }, [times, span, series, unit]);
  const summary = series.map((s) => `${s.label}: ${s.values.filter((v) => v != null).join(", ") || "no data"}`).join("; ");
  return (
    <figure className="card mb-4">
      <figcaption className="font-semibold text-sm mb-2">{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}. ${summary}`} />
    </figure>
  );
}
