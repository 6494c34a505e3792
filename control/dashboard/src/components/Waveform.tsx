// A call's recording drawn as its waveform (wavesurfer.js), fetched with the person's token;
// `seekTo` jumps to a moment of the call (a transcript line's start).
import { forwardRef, useEffect, useImperativeHandle, useRef, useState } from "react";
import WaveSurfer from "wavesurfer.js";
import { credentials } from "../api/client";

export interface WaveformHandle {
  seekTo(seconds: number): void;
}

export const Waveform = forwardRef<WaveformHandle, { url: string }>(function Waveform({ url }, ref) {
  const container = useRef<HTMLDivElement>(null);
  const surfer = useRef<WaveSurfer | null>(null);
  const [playing, setPlaying] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [ready, setReady] = useState(false);
  const [position, setPosition] = useState(0);

  useEffect(() => {
    if (!container.current) return;
    const ws = WaveSurfer.create({
      container: container.current,
      url,
      height: 64,
      waveColor: "#94a3b8",
      progressColor: "#4338ca",
      // The recording is an API resource: the same token and workspace as every request.
      fetchParams: {
        headers: { Authorization: `Bearer ${credentials.token ?? ""}`, "X-Workspace-Id": credentials.workspace ?? "" },
      },
    });
    ws.on("play", () => setPlaying(true));
    ws.on("pause", () => setPlaying(false));
    ws.on("ready", () => setReady(true));
    ws.on("timeupdate", (t) => setPosition(t));
    ws.on("error", (e) => setError(String(e)));
    surfer.current = ws;
    return () => {
      ws.destroy();
      surfer.current = null;
    };
  }, [url]);

  useImperativeHandle(ref, () => ({
    seekTo(seconds: number) {
      const ws = surfer.current;
      if (!ws) return;
      ws.setTime(seconds);
      void ws.play();
    },
  }));

  return (
    <div>
      <div ref={container} data-ready={ready} data-position={position.toFixed(1)} role="img" aria-label="Waveform of the call's recording (caller and agent)" />
      <div className="mt-2 flex gap-2">
        <button className="btn" disabled={!ready} onClick={() => void surfer.current?.playPause()}>
          {playing ? "Pause" : "Play"}
        </button>
      </div>
      {error && <p className="field-error">The recording could not be loaded: {error}</p>}
    </div>
  );
});
