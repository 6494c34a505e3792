//! `freya call` as a person runs it, against a control plane and an edge in-process whose agent
//! speaks through the fake OpenAI speech and language-model servers: the caller waits out a
//! greeting with a comma's pause in it before it speaks, or with `--barge-in` cuts into the
//! greeting on purpose, and prints each turn as the call goes on, its words transcribed when the
//! local recogniser is installed. Each test checks what the command printed and what the control
//! plane recorded of the call. Nothing here asserts on speed.

use std::process::Stdio;
use std::time::Duration;

use crate::support::voice_call::{of_kind, only_call_events};
use crate::support::world::World;
use freya_edge::llm::fakes::FakeReply;
use freya_edge::speech::fakes::tone;
use freya_edge::speech::wav::encode_wav;
use freya_loadtest::audio::Utterance;

/// A control plane, an edge, the fake providers, and number `demo` answered by an agent that
/// greets with one sentence and speaks every sentence as `speech` (24 kHz).
async fn world(speech_audio: Vec<i16>) -> World {
    let w = World::builder()
        .workspace("Voice")
        .voice()
        .agent(serde_json::json!({
            "name": "Front desk",
            "system_prompt": "You are the front desk of Acme.",
            "first_message": "Hello, thanks for calling Acme."
        }))
        .start()
        .await;
    w.speech().set_speech_audio(speech_audio);
    w
}

/// Runs `freya call sip:demo@EDGE ARGS...` to its end; returns what it printed, line by line.
async fn freya_call(w: &World, args: &[&str]) -> Vec<String> {
    run_freya_call(w, args, None).await
}

/// As [`freya_call`], with `PATH` set to `path` when given.
async fn run_freya_call(w: &World, args: &[&str], path: Option<&std::path::Path>) -> Vec<String> {
    let uri = format!("sip:demo@{}", w.edge.sip_addr);
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_freya"));
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let child = command
        .arg("call")
        .arg(&uri)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("freya call starts");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("freya call ends within 90 s")
        .expect("freya call runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "freya call failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// The index of the first line that starts with `prefix`.
fn line_starting(lines: &[String], prefix: &str) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}:\n{}", lines.join("\n")))
}

/// 24 kHz audio: a tone, a pause of `pause_ms`, and a longer tone — a sentence with a comma.
fn clause_pause_clause(pause_ms: u32) -> Vec<i16> {
    let mut audio = tone(24_000, 800);
    audio.extend(std::iter::repeat_n(0, 24 * pause_ms as usize));
    audio.extend(tone(24_000, 1_200));
    audio
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freya_call_waits_out_the_comma_in_the_greeting_and_prints_each_turn() {
    // The greeting pauses for 350 ms after its first clause, as espeak-ng does at a comma.
    let w = world(clause_pause_clause(350)).await;
    w.speech()
        .set_default_transcript("What are your opening hours?");
    w.llm()
        .respond_with(|_| FakeReply::text("We are open from nine to five."));
    let lines = freya_call(
        &w,
        &[
            "--say",
            "What are your opening hours?",
            "--linger-seconds",
            "1",
        ],
    )
    .await;
    let all = lines.join("\n");
    // The greeting is one agent turn, printed once it is over, before the caller speaks.
    let greeting = line_starting(&lines, "agent (turn 1, ");
    let asked = line_starting(&lines, "you (turn 1): \"What are your opening hours?\"");
    assert!(greeting < asked, "{all}");
    let answered = line_starting(&lines, "  the agent answered ");
    let answer = line_starting(&lines, "agent (turn 2, ");
    assert!(asked < answered && answered < answer, "{all}");
    // The summary is still printed at the end.
    let summary = line_starting(&lines, "turn 1: you said \"What are your opening hours?\"");
    assert!(answer < summary, "{all}");

    // The caller never spoke over the agent: no barge-in, and the whole greeting was heard.
    let events = only_call_events(&w.control, &w.scope).await;
    assert!(
        of_kind(&events, "call.barge_in").is_empty(),
        "{all}\n{events:?}"
    );
    let greeting = of_kind(&events, "call.transcript")
        .into_iter()
        .find(|e| e.payload["role"] == "agent")
        .map(|e| e.payload.clone())
        .expect("the greeting is in the transcript");
    assert_ne!(greeting["interrupted"], true, "{greeting}");
    assert_eq!(w.speech().utterances().len(), 1, "the agent heard one turn");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freya_call_with_barge_in_cuts_into_the_greeting_and_prints_how_soon_it_fell_quiet() {
    // Every sentence is six seconds long: only an interruption ends the greeting early.
    let w = world(tone(24_000, 6_000)).await;
    w.speech()
        .set_default_transcript("Sorry, can I ask something?");
    w.llm().respond_with(|_| FakeReply::text("Of course."));
    // The caller's turn as a WAV file, and nothing on PATH: this call runs no recogniser (one
    // test that does is enough on a small machine).
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("question.wav");
    let question = Utterance::from_spec("say:Sorry, can I ask something?").expect("espeak-ng");
    std::fs::write(&wav, encode_wav(8_000, &question.samples)).expect("write the WAV");
    let wav = wav.display().to_string();
    let lines = run_freya_call(
        &w,
        &[
            "--wav",
            &wav,
            "--barge-in",
            "--barge-in-after-ms",
            "400",
            "--linger-seconds",
            "1",
        ],
        Some(dir.path()),
    )
    .await;
    let all = lines.join("\n");
    let cut_in = line_starting(&lines, &format!("you (turn 1, over the agent): ({wav})"));
    let quiet = line_starting(&lines, "  the agent went quiet ");
    assert!(cut_in < quiet, "{all}");
    // The cut greeting is printed as the agent's first turn once it is over.
    line_starting(&lines, "agent (turn 1, ");
    line_starting(&lines, "interruption 1: the agent went quiet ");

    let events = only_call_events(&w.control, &w.scope).await;
    assert_eq!(
        of_kind(&events, "call.barge_in").len(),
        1,
        "{all}\n{events:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_recogniser_freya_call_prints_the_agents_turns_without_text_and_one_note() {
    let w = world(tone(24_000, 1_000)).await;
    // Nothing on PATH: no pocketsphinx (and, with no --say, no espeak-ng is needed).
    let empty = tempfile::tempdir().expect("temp dir");
    let lines = run_freya_call(&w, &["--linger-seconds", "1"], Some(empty.path())).await;
    let all = lines.join("\n");
    let notes: Vec<&String> = lines.iter().filter(|l| l.starts_with("note: ")).collect();
    assert_eq!(notes.len(), 1, "{all}");
    assert!(
        notes[0].contains("sudo apt-get install pocketsphinx pocketsphinx-en-us"),
        "{all}"
    );
    let greeting = &lines[line_starting(&lines, "agent (turn 1, ")];
    assert!(greeting.ends_with(" s)"), "no text after the turn: {all}");
    w.stop().await;
}
