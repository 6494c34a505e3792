//! The open-vocabulary language model of the offline recogniser, in the ARPA text pocketsphinx
//! reads: an absolute-discounting backoff trigram model over the agent's phrases, interpolated at
//! the unigram level with the most frequent English words, so speech outside the phrases is heard
//! as ordinary words rather than forced onto a phrase. No I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Weight of the phrases against the common words in the unigrams.
const PHRASE_WEIGHT: f64 = 0.98;
/// Absolute discount of the bigrams and trigrams.
const DISCOUNT: f64 = 0.5;

type Gram = Vec<String>;

/// An absolute-discounting backoff trigram model over the phrases, interpolated at the unigram
/// level with the common words.
pub(super) struct OpenModel {
    /// log10 probability and backoff weight of each n-gram, by order (1, 2, 3).
    orders: [BTreeMap<Gram, (f64, Option<f64>)>; 3],
}

impl OpenModel {
    /// The model of `phrases` (as words), with `common` words and their log10 probabilities.
    pub(super) fn estimate(phrases: &[Vec<String>], common: &[(String, f64)]) -> Self {
        let mut counts: [BTreeMap<Gram, f64>; 3] = Default::default();
        for phrase in phrases {
            let tokens: Vec<String> = std::iter::once("<s>".to_string())
                .chain(phrase.iter().cloned())
                .chain(std::iter::once("</s>".to_string()))
                .collect();
            for n in 1..=3 {
                for window in tokens.windows(n) {
                    if n == 1 && window[0] == "<s>" {
                        continue;
                    }
                    *counts[n - 1].entry(window.to_vec()).or_default() += 1.0;
                }
            }
        }
        let total: f64 = counts[0].values().sum();
        let common_total: f64 = common.iter().map(|(_, p)| 10f64.powf(*p)).sum();
        let mut unigram: BTreeMap<String, f64> = BTreeMap::new();
        for (gram, count) in &counts[0] {
            *unigram.entry(gram[0].clone()).or_default() += PHRASE_WEIGHT * count / total;
        }
        for (word, log_p) in common {
            *unigram.entry(word.clone()).or_default() +=
                (1.0 - PHRASE_WEIGHT) * 10f64.powf(*log_p) / common_total.max(f64::MIN_POSITIVE);
        }
        let norm: f64 = unigram.values().sum();
        for p in unigram.values_mut() {
            *p /= norm;
        }
        let p1 = |w: &str| unigram.get(w).copied().unwrap_or(1e-9);
        let (p2, bow1) = discount(&counts[1], |_, w| p1(w));
        let p_bi = |h: &str, w: &str| {
            p2.get(&vec![h.to_string(), w.to_string()])
                .copied()
                .unwrap_or_else(|| bow1.get(&vec![h.to_string()]).copied().unwrap_or(1.0) * p1(w))
        };
        let (p3, bow2) = discount(&counts[2], |h, w| p_bi(&h[1], w));
        let mut orders: [BTreeMap<Gram, (f64, Option<f64>)>; 3] = Default::default();
        orders[0].insert(
            vec!["<s>".into()],
            (
                -99.0,
                Some(
                    bow1.get(&vec!["<s>".to_string()])
                        .copied()
                        .unwrap_or(1.0)
                        .log10(),
                ),
            ),
        );
        for (word, p) in &unigram {
            let gram = vec![word.clone()];
            let bow = bow1.get(&gram).map(|b| b.log10());
            orders[0].insert(gram, (p.log10(), bow));
        }
        for (gram, p) in p2 {
            let bow = bow2.get(&gram).map(|b| b.log10());
            orders[1].insert(gram, (p.log10(), bow));
        }
        for (gram, p) in p3 {
            orders[2].insert(gram, (p.log10(), None));
        }
        OpenModel { orders }
    }

    /// The model as ARPA text.
    pub(super) fn to_arpa(&self) -> String {
        let mut out = String::from("\\data\\\n");
        for (n, grams) in self.orders.iter().enumerate() {
            let _ = writeln!(out, "ngram {}={}", n + 1, grams.len());
        }
        for (n, grams) in self.orders.iter().enumerate() {
            let _ = write!(out, "\n\\{}-grams:\n", n + 1);
            for (gram, (log_p, bow)) in grams {
                let _ = write!(out, "{log_p:.4}\t{}", gram.join(" "));
                if let Some(bow) = bow {
                    let _ = write!(out, "\t{bow:.4}");
                }
                out.push('\n');
            }
        }
        out.push_str("\n\\end\\\n");
        out
    }
}

/// Discounted probabilities of `counts` (n-grams of one order) and the backoff weight of each
/// history, so that every history's distribution sums to one over `lower(history, word)`.
fn discount(
    counts: &BTreeMap<Gram, f64>,
    lower: impl Fn(&[String], &str) -> f64,
) -> (BTreeMap<Gram, f64>, BTreeMap<Gram, f64>) {
    let mut by_history: BTreeMap<&[String], Vec<(&str, f64)>> = BTreeMap::new();
    for (gram, count) in counts {
        let (word, history) = gram.split_last().expect("n-grams have a word");
        by_history.entry(history).or_default().push((word, *count));
    }
    let mut probs = BTreeMap::new();
    let mut backoffs = BTreeMap::new();
    for (history, followers) in by_history {
        let total: f64 = followers.iter().map(|(_, c)| c).sum();
        let reserved = DISCOUNT * followers.len() as f64 / total;
        let (mut seen, mut seen_lower) = (0.0, 0.0);
        for (word, count) in followers {
            let low = lower(history, word);
            let p = (count - DISCOUNT) / total + reserved * low;
            let mut gram = history.to_vec();
            gram.push(word.to_string());
            probs.insert(gram, p);
            seen += p;
            seen_lower += low;
        }
        let weight = (1.0 - seen).max(1e-9) / (1.0 - seen_lower).max(1e-9);
        backoffs.insert(history.to_vec(), weight);
    }
    (probs, backoffs)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::OpenModel;

    fn phrase(words: &str) -> Vec<String> {
        words.split(' ').map(str::to_string).collect()
    }

    /// Parses the ARPA text back and checks that each history's distribution sums to one.
    #[test]
    fn the_open_model_is_a_normalised_backoff_model() {
        let phrases = [
            phrase("hello"),
            phrase("what are your hours"),
            phrase("are you open"),
            phrase("what are your hours"),
        ];
        let arpa = OpenModel::estimate(&phrases, &[("the".to_string(), -1.4)]).to_arpa();
        let mut orders: [HashMap<Vec<String>, (f64, f64)>; 3] = Default::default();
        let mut order = 0;
        for line in arpa.lines() {
            if let Some(n) = line
                .strip_prefix('\\')
                .and_then(|l| l.strip_suffix("-grams:"))
            {
                order = n.parse::<usize>().expect("order");
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            if order == 0 || fields.len() < 2 {
                continue;
            }
            let p: f64 = fields[0].parse().expect("probability");
            let bow: f64 = fields.get(2).map_or(0.0, |b| b.parse().expect("backoff"));
            let gram = fields[1].split(' ').map(str::to_string).collect();
            orders[order - 1].insert(gram, (10f64.powf(p), 10f64.powf(bow)));
        }
        let vocab: Vec<String> = orders[0]
            .keys()
            .map(|g| g[0].clone())
            .filter(|w| w != "<s>")
            .collect();
        let unigrams: f64 = vocab.iter().map(|w| orders[0][&vec![w.clone()]].0).sum();
        assert!((unigrams - 1.0).abs() < 1e-3, "unigrams sum to {unigrams}");
        let p1 = |w: &str| orders[0][&vec![w.to_string()]].0;
        let p2 = |h: &str, w: &str| {
            orders[1]
                .get(&vec![h.to_string(), w.to_string()])
                .map(|(p, _)| *p)
                .unwrap_or_else(|| orders[0][&vec![h.to_string()]].1 * p1(w))
        };
        for history in ["<s>", "what", "are"] {
            let sum: f64 = vocab.iter().map(|w| p2(history, w)).sum();
            assert!((sum - 1.0).abs() < 1e-3, "P(.|{history}) sums to {sum}");
        }
        let sum: f64 = vocab
            .iter()
            .map(|w| {
                orders[2]
                    .get(&vec!["what".into(), "are".into(), w.clone()])
                    .map(|(p, _)| *p)
                    .unwrap_or_else(|| {
                        orders[1][&vec!["what".to_string(), "are".to_string()]].1 * p2("are", w)
                    })
            })
            .sum();
        assert!((sum - 1.0).abs() < 1e-3, "P(.|what are) sums to {sum}");
    }
}
