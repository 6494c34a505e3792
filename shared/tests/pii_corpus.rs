//! Recall and precision of the redactor on the committed corpus (`tests/data/pii_corpus.txt`):
//! transcript lines, written and spoken, each piece of personal data marked `{kind:text}`, and
//! distractors (order numbers, times, prices, quantities, years) that must come out unchanged.
//! A finding counts only when its kind and its exact span match a mark; a partial one counts as
//! both a miss and a false alarm. `cargo test -p freya-shared --test pii_corpus -- --nocapture`
//! prints the table and every line that went wrong.

use freya_shared::redact::{PiiKind, Redactor};

/// One marked piece: kind and byte range in the unmarked line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    kind: PiiKind,
    start: usize,
    end: usize,
}

/// The line without marks, and the marks.
fn parse(line: &str) -> (String, Vec<Mark>) {
    let mut text = String::new();
    let mut marks = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').expect("an unclosed mark in the corpus");
        let (kind, value) = after[..close]
            .split_once(':')
            .expect("a mark without `kind:`");
        let kind: PiiKind = kind.parse().expect("an unknown kind in the corpus");
        let start = text.len();
        text.push_str(value);
        marks.push(Mark {
            kind,
            start,
            end: text.len(),
        });
        rest = &after[close + 1..];
    }
    text.push_str(rest);
    (text, marks)
}

#[derive(Default, Clone, Copy)]
struct Score {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Score {
    fn recall(self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    fn precision(self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// The table's row for `label`: marked, found right, missed, false alarms, recall, precision.
    fn row(self, label: &str) -> String {
        format!(
            "| {label} | {} | {} | {} | {} | {:.1} % | {:.1} % |",
            self.tp + self.fn_,
            self.tp,
            self.fn_,
            self.fp,
            100.0 * self.recall(),
            100.0 * self.precision()
        )
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

#[test]
fn recall_and_precision_on_the_corpus_meet_the_bar() {
    let corpus = include_str!("data/pii_corpus.txt");
    let redactor = Redactor::new(PiiKind::ALL);
    let mut per_kind = [Score::default(); PiiKind::ALL.len()];
    let idx = |k: PiiKind| PiiKind::ALL.iter().position(|x| *x == k).unwrap_or(0);
    let (mut lines, mut distractors, mut wrong_lines) = (0, 0, 0);
    for line in corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        lines += 1;
        let (text, marks) = parse(line);
        if marks.is_empty() {
            distractors += 1;
        }
        let found = redactor.find(&text);
        let mut wrong = false;
        for f in &found {
            let hit = marks
                .iter()
                .any(|m| m.kind == f.kind && m.start == f.start && m.end == f.end);
            if hit {
                per_kind[idx(f.kind)].tp += 1;
            } else {
                per_kind[idx(f.kind)].fp += 1;
                wrong = true;
                println!(
                    "FALSE ALARM {}: {:?} in {text:?}",
                    f.kind,
                    &text[f.start..f.end]
                );
            }
        }
        for m in &marks {
            let hit = found
                .iter()
                .any(|f| m.kind == f.kind && m.start == f.start && m.end == f.end);
            if !hit {
                per_kind[idx(m.kind)].fn_ += 1;
                wrong = true;
                println!(
                    "MISSED {}: {:?} in {text:?} -> {:?}",
                    m.kind,
                    &text[m.start..m.end],
                    redactor.redact(&text).0
                );
            }
        }
        wrong_lines += usize::from(wrong);
    }
    let mut total = Score::default();
    println!();
    println!("| kind | marked | found right | missed | false alarms | recall | precision |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (k, s) in PiiKind::ALL.iter().zip(per_kind) {
        total.tp += s.tp;
        total.fp += s.fp;
        total.fn_ += s.fn_;
        println!("{}", s.row(&k.to_string()));
    }
    println!("{}", total.row("**all**"));
    println!("{lines} lines ({distractors} with nothing to redact); {wrong_lines} lines not exactly right");
    assert!(lines >= 300, "the corpus must hold at least 300 lines");
    assert!(
        total.recall() >= 0.98,
        "recall {:.3} is under 0.98",
        total.recall()
    );
    assert!(
        total.precision() >= 0.95,
        "precision {:.3} is under 0.95",
        total.precision()
    );
}
