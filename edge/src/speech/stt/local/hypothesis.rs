//! What one decoder heard, word by word: `pocketsphinx_continuous -time yes` prints, for each
//! utterance, its hypothesis and then one line per word with its start and end (seconds) and
//! its posterior probability. The times let [`super::decision`] compare the two decoders' words
//! where they overlap rather than anywhere in the turn, and the posteriors say how sure the
//! open decoder was. No I/O.

/// One recognised word.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimedWord {
    /// The word as the dictionary spells it, without a variant's `(2)`.
    pub word: String,
    /// Start, seconds from the start of the audio.
    pub start: f32,
    /// End, seconds.
    pub end: f32,
    /// Posterior probability, 0 to 1 (1 for grammar searches, which do not compute it).
    pub posterior: f32,
}

impl TimedWord {
    /// Whether this word and `other` share some time.
    pub(crate) fn overlaps(&self, other: &TimedWord) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A decoder's words with their times, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Hypothesis {
    /// The words, fillers and silences left out.
    pub words: Vec<TimedWord>,
}

impl Hypothesis {
    /// Parses a decoder's `-time yes` output. Hypothesis lines are skipped: only lines of a word
    /// and three numbers are word lines (no dictionary word is a number). Silence, noise and
    /// sentence markers (`<sil>`, `[NOISE]`, `<s>`, `(NULL)`) are not words.
    pub(crate) fn parse(output: &str) -> Self {
        let words = output
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let word = fields.next()?;
                let start = fields.next()?.parse::<f32>().ok()?;
                let end = fields.next()?.parse::<f32>().ok()?;
                let posterior = fields.next()?.parse::<f32>().ok()?;
                if fields.next().is_some() || word.starts_with(['<', '[', '(']) {
                    return None;
                }
                let word = match word.split_once('(') {
                    Some((base, _)) => base,
                    None => word,
                };
                Some(TimedWord {
                    word: word.to_lowercase(),
                    start,
                    end,
                    posterior,
                })
            })
            .collect();
        Hypothesis { words }
    }

    /// The words, space-separated.
    pub(crate) fn text(&self) -> String {
        let words: Vec<&str> = self.words.iter().map(|w| w.word.as_str()).collect();
        words.join(" ")
    }

    /// Whether no word was heard.
    pub(crate) fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_lines_are_kept_and_hypotheses_fillers_and_variants_are_not() {
        let output = "i for out\n<s> 0.000 0.020 0.999900\ni 0.030 0.210 0.933039\n\
                      for(2) 0.220 0.550 0.879576\nout 0.560 0.950 0.118951\n\
                      [NOISE] 0.960 1.330 0.925234\n</s> 1.340 1.360 1.000000\n\
                      bye for now\n(NULL) -0.010 -0.010 1.000000\nbye 1.4 1.6 1.0\n";
        let heard = Hypothesis::parse(output);
        assert_eq!(heard.text(), "i for out bye");
        assert_eq!(heard.words[1].start, 0.22);
        assert!((heard.words[2].posterior - 0.118951).abs() < 1e-6);
    }

    #[test]
    fn a_four_word_hypothesis_line_is_not_a_word_line() {
        assert!(Hypothesis::parse("can i book now\n").is_empty());
        assert!(Hypothesis::parse("").is_empty());
        assert!(Hypothesis::parse("word 0.1 0.2 0.3 extra\n").is_empty());
    }

    #[test]
    fn overlap_is_shared_time() {
        let word = |start, end| TimedWord {
            word: "x".into(),
            start,
            end,
            posterior: 1.0,
        };
        assert!(word(0.0, 0.3).overlaps(&word(0.2, 0.5)));
        assert!(!word(0.0, 0.2).overlaps(&word(0.2, 0.5)));
    }
}
