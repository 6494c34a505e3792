#!/usr/bin/env bash
# Speaks the demo agent's intent corpus (intents.tsv beside this script) with espeak-ng, in
# several voices and speeds, as telephone audio: 8 kHz, 16-bit mono WAV (the G.711 band), every
# fourth utterance also cut to 300-3400 Hz and every third with light white noise (about 25 dB
# below the speech). Writes OUT_DIR/NNN.wav and OUT_DIR/index.tsv (file, intent, voice, speed,
# noise, band, text). Needs espeak-ng and sox. Usage:
#   [VOICES="v1 v2 ..."] make_intent_corpus.sh [--sentences FILE] [--opening TEXT] OUT_DIR
# VOICES replaces the default voices (e.g. with ones the recogniser was not adapted to);
# --sentences speaks FILE (same two-column format, e.g. intents_heldout.tsv) instead.
# --opening TEXT speaks TEXT (intent none) on every line instead of the line's sentence, in the
# voice, speed, band and noise that line would have: a caller's opening words before a request,
# measured on the same lines as the requests.
# sox runs repeatable (-R: its dither and noise from a fixed seed), so every run writes the same
# audio and a change to the recogniser is measured on the files it was compared against.
set -euo pipefail
usage="usage: [VOICES=\"v1 v2 ...\"] make_intent_corpus.sh [--sentences FILE] [--opening TEXT] OUT_DIR"
here=$(cd "$(dirname "$0")" && pwd)
sentences=$here/intents.tsv
if [ "${1:-}" = --sentences ]; then
  sentences=${2:?$usage}
  shift 2
fi
opening=
if [ "${1:-}" = --opening ]; then
  opening=${2:?$usage}
  shift 2
fi
out=${1:?$usage}
[ -r "$sentences" ] || { echo "cannot read $sentences" >&2; exit 1; }
mkdir -p "$out"
if [ -n "${VOICES:-}" ]; then
  read -r -a voices <<<"$VOICES"
else
  voices=(en-us en-gb en-us+f3 en-gb-scotland en-us+m3 en-029 en-gb-x-rp en-us+f2)
fi
speeds=(140 150 160 170 180 190)
printf 'file\tintent\tvoice\tspeed\tnoise\tband\ttext\n' >"$out/index.tsv"
i=0
while IFS=$'\t' read -r intent text; do
  case "$intent" in ''|'#'*) continue ;; esac
  if [ -n "$opening" ]; then intent=none; text=$opening; fi
  voice=${voices[$((i % ${#voices[@]}))]}
  speed=${speeds[$((i % ${#speeds[@]}))]}
  name=$(printf '%03d.wav' "$i")
  espeak-ng -v "$voice" -s "$speed" -w "$out/raw.wav" "$text"
  band=full
  filter=()
  if [ $((i % 4)) -eq 3 ]; then band=300-3400; filter=(sinc 300-3400); fi
  sox -R "$out/raw.wav" -r 8000 -b 16 -c 1 "$out/tel.wav" "${filter[@]}"
  noise=none
  if [ $((i % 3)) -eq 2 ]; then
    noise=white-30dB
    length=$(soxi -D "$out/tel.wav")
    sox -R -n -r 8000 -b 16 -c 1 "$out/noise.wav" synth "$length" whitenoise vol 0.01
    sox -R -m "$out/tel.wav" "$out/noise.wav" "$out/$name"
  else
    mv "$out/tel.wav" "$out/$name"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$intent" "$voice" "$speed" "$noise" "$band" "$text" >>"$out/index.tsv"
  i=$((i + 1))
done <"$sentences"
rm -f "$out/raw.wav" "$out/tel.wav" "$out/noise.wav"
echo "wrote $i utterances to $out"
