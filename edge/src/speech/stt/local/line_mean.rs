//! The cepstral mean of a caller's line, carried from one turn to the next within a call.
//!
//! pocketsphinx subtracts a running mean from every cepstral frame (live CMN), but it updates
//! that mean only at the end of an utterance. Each turn is a new decoder process, so without
//! help every turn would be decoded, start to end, with the acoustic model's starting mean
//! (`-cmninit` in its `feat.params`: wideband microphone speech), far from the mean of
//! zero-inserted telephone audio. The line does not change within a call, so the mean the
//! decoders learned by the end of one turn is what the next turn should start from.
//!
//! [`LineMean`] is that per-call memory, a plain value: each finished turn hands it the mean
//! its decoder printed at its end ([`CepstralMean::from_log_line`]) and the turn's length,
//! and [`LineMean::start`] says what the next turn's decoders start from (the model's own mean
//! for a call's first turn, so a first turn is decoded exactly as before). pocketsphinx reads
//! `feat.params` *over* the command line, so [`without_starting_mean`] makes a copy of the
//! model directory (links to its files) whose `feat.params` leaves `-cmninit` to the command
//! line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::speech::SpeechError;

/// Coefficients in the models' cepstra (`-ceplen`, 13 for every model `pocketsphinx-en-us` and
/// the adaptation make).
pub(crate) const CEPSTRA: usize = 13;
/// How much of the call's past the carried mean remembers: the mean of at most the last this
/// much speech, older turns weighing less as new ones come (pocketsphinx's own live window is
/// 5 s, `CMN_WIN`).
const MEMORY: Duration = Duration::from_secs(5);
/// A turn shorter than this says too little about the line to move the mean.
const SHORTEST_TURN: Duration = Duration::from_millis(300);

/// One mean cepstrum (what pocketsphinx subtracts from each frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CepstralMean(pub(crate) [f32; CEPSTRA]);

impl CepstralMean {
    /// The mean a decoder's log reports after an utterance:
    /// `INFO: cmn_live.c(138): Update to   < 60.74 -6.17 ... >`; `None` for any other line.
    pub(crate) fn from_log_line(line: &str) -> Option<Self> {
        let (_, rest) = line.split_once("Update to")?;
        let inside = rest.trim().strip_prefix('<')?.strip_suffix('>')?;
        Self::parse(inside.split_whitespace())
    }

    /// The mean a model's `feat.params` starts from: its `-cmninit a,b,...` line.
    pub(crate) fn from_feat_params(text: &str) -> Option<Self> {
        text.lines().find_map(|line| {
            let value = line.trim().strip_prefix("-cmninit")?;
            Self::parse(value.trim().split(','))
        })
    }

    fn parse<'a>(mut values: impl Iterator<Item = &'a str>) -> Option<Self> {
        let mut mean = [0.0; CEPSTRA];
        for slot in &mut mean {
            let value: f32 = values.next()?.trim().parse().ok()?;
            if !value.is_finite() {
                return None;
            }
            *slot = value;
        }
        values.next().is_none().then_some(CepstralMean(mean))
    }

    /// The `-cmninit` argument (`41.00,-5.29,...`).
    pub(crate) fn argument(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|v| format!("{v:.2}")).collect();
        parts.join(",")
    }
}

/// A call's memory of its line: the mean its turns start from.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LineMean {
    /// The mean learned so far and how much speech it stands for; `None` before the first
    /// turn has ended.
    learned: Option<(CepstralMean, Duration)>,
}

impl LineMean {
    /// The mean the next turn's decoders start from; `None`: the model's own (a call's first
    /// turn).
    pub(crate) fn start(&self) -> Option<CepstralMean> {
        self.learned.map(|(mean, _)| mean)
    }

    /// A turn of `length` ended and its decoder's mean was `mean` (the turn's own: each
    /// decoder is new). The call's mean becomes the average of its turns weighted by their
    /// length, the older ones fading once [`MEMORY`] is reached.
    pub(crate) fn handle_turn(&mut self, mean: CepstralMean, length: Duration) {
        if length < SHORTEST_TURN {
            return;
        }
        let length = length.min(MEMORY);
        self.learned = Some(match self.learned {
            None => (mean, length),
            Some((old, weight)) => {
                let weight = weight.min(MEMORY - length);
                let (w_old, w_new) = (weight.as_secs_f32(), length.as_secs_f32());
                let mut mixed = [0.0; CEPSTRA];
                for (i, slot) in mixed.iter_mut().enumerate() {
                    *slot = (old.0[i] * w_old + mean.0[i] * w_new) / (w_old + w_new);
                }
                (CepstralMean(mixed), weight + length)
            }
        });
    }
}

/// A model directory pocketsphinx will take a `-cmninit` for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MeanFreeModel {
    /// The directory to pass as `-hmm`.
    pub(crate) dir: PathBuf,
    /// The mean the model's own `feat.params` starts from, passed on the command line instead.
    pub(crate) starting_mean: Option<CepstralMean>,
}

/// `model` as a directory under `work_dir` whose `feat.params` has no `-cmninit` (every other
/// file a link to the model's own), written once per model and `feat.params` (blocking).
pub(crate) fn without_starting_mean(
    model: &Path,
    work_dir: &Path,
) -> Result<MeanFreeModel, SpeechError> {
    let params_path = model.join("feat.params");
    let params = std::fs::read_to_string(&params_path).map_err(|e| SpeechError::Config {
        field: "local recogniser acoustic model",
        detail: format!("cannot read {}: {e}", params_path.display()),
    })?;
    let starting_mean = CepstralMean::from_feat_params(&params);
    let kept: String = params
        .lines()
        .filter(|line| !line.trim().starts_with("-cmninit"))
        .map(|line| format!("{line}\n"))
        .collect();
    let mut hash = Sha256::new();
    hash.update(model.as_os_str().as_encoded_bytes());
    hash.update([0]);
    hash.update(params.as_bytes());
    let dir = work_dir.join(format!("line-mean-{}", &hex::encode(hash.finalize())[..16]));
    if !dir.join("feat.params").is_file() {
        write_model(model, &dir, &kept)?;
    }
    Ok(MeanFreeModel { dir, starting_mean })
}

/// Writes the linked copy aside and renames it into place, so a concurrent call never sees
/// half of it.
fn write_model(model: &Path, dir: &Path, feat_params: &str) -> Result<(), SpeechError> {
    let error = |path: &Path, e: std::io::Error| SpeechError::Config {
        field: "local recogniser work directory",
        detail: format!("cannot write {}: {e}", path.display()),
    };
    let partial = dir.with_extension(format!("{}.partial", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| error(&partial, e))?;
    let entries = std::fs::read_dir(model).map_err(|e| error(model, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| error(model, e))?;
        let name = entry.file_name();
        if name == "feat.params" {
            continue;
        }
        let link = partial.join(&name);
        std::os::unix::fs::symlink(entry.path(), &link).map_err(|e| error(&link, e))?;
    }
    let params = partial.join("feat.params");
    std::fs::write(&params, feat_params).map_err(|e| error(&params, e))?;
    match std::fs::rename(&partial, dir) {
        Ok(()) => Ok(()),
        // Another call wrote it first: theirs is the same.
        Err(_) if dir.join("feat.params").is_file() => {
            let _ = std::fs::remove_dir_all(&partial);
            Ok(())
        }
        Err(e) => Err(error(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(first: f32) -> CepstralMean {
        let mut values = [0.0; CEPSTRA];
        values[0] = first;
        values[5] = -first;
        CepstralMean(values)
    }

    #[test]
    fn the_mean_a_decoder_learned_is_read_from_its_log() {
        let line = "INFO: cmn_live.c(138): Update to   < 60.74 -6.17  9.86 -4.31 -4.85 -12.38  \
                    1.82 -13.04 -21.44 -3.90  5.82  4.90 -10.12 >";
        let got = CepstralMean::from_log_line(line).expect("a mean");
        assert_eq!(got.0[0], 60.74);
        assert_eq!(got.0[12], -10.12);
        assert_eq!(
            got.argument(),
            "60.74,-6.17,9.86,-4.31,-4.85,-12.38,1.82,-13.04,-21.44,-3.90,5.82,4.90,-10.12"
        );
        let from = "INFO: cmn_live.c(120): Update from < 41.00 -5.29 -0.12  5.09  2.48 -4.07 \
                    -1.37 -1.78 -5.08 -2.05 -6.45 -1.42  1.17 >";
        assert_eq!(CepstralMean::from_log_line(from), None);
        for bad in [
            "INFO: cmn_live.c(138): Update to   < 1 2 3 >",
            "INFO: cmn_live.c(138): Update to   < 1 2 3 4 5 6 7 8 9 10 11 12 13 14 >",
            "INFO: cmn_live.c(138): Update to   < nan 2 3 4 5 6 7 8 9 10 11 12 13 >",
            "INFO: cmn_live.c(138): Update to   < 1 2 3 4 5 6 7 8 9 10 11 12 x >",
            "INFO: cmn_live.c(138): Update to   < 1 2 3 4 5 6 7 8 9 10 11 12 13",
        ] {
            assert_eq!(CepstralMean::from_log_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_models_starting_mean_is_read_from_its_feat_params() {
        let params = "-lowerf 130\n-cmn batch\n-cmninit 41.00,-5.29,-0.12,5.09,2.48,-4.07,\
                      -1.37,-1.78,-5.08,-2.05,-6.45,-1.42,1.17\n-model ptm\n";
        let got = CepstralMean::from_feat_params(params).expect("a mean");
        assert_eq!(got.0[0], 41.0);
        assert_eq!(got.0[12], 1.17);
        assert_eq!(CepstralMean::from_feat_params("-cmn batch\n"), None);
    }

    #[test]
    fn a_calls_first_turn_starts_from_the_model_and_later_ones_from_the_line() {
        let mut line = LineMean::default();
        assert_eq!(line.start(), None, "the first turn: the model's own mean");
        line.handle_turn(mean(60.0), Duration::from_secs(2));
        assert_eq!(line.start(), Some(mean(60.0)));
        // A second turn as long: the average of the two.
        line.handle_turn(mean(50.0), Duration::from_secs(2));
        assert_eq!(line.start(), Some(mean(55.0)));
    }

    #[test]
    fn a_turn_too_short_to_say_much_does_not_move_the_mean() {
        let mut line = LineMean::default();
        line.handle_turn(mean(60.0), Duration::from_millis(200));
        assert_eq!(line.start(), None);
        line.handle_turn(mean(60.0), Duration::from_secs(1));
        line.handle_turn(mean(10.0), Duration::from_millis(100));
        assert_eq!(line.start(), Some(mean(60.0)));
    }

    #[test]
    fn old_turns_fade_once_the_memory_is_full() {
        let mut line = LineMean::default();
        for _ in 0..5 {
            line.handle_turn(mean(60.0), Duration::from_secs(4));
        }
        // 5 s remembered: a 4 s turn now outweighs what came before four to one.
        line.handle_turn(mean(10.0), Duration::from_secs(4));
        let got = line.start().expect("a mean").0[0];
        assert!((got - 20.0).abs() < 1e-3, "{got}");
        // A turn longer than the memory replaces it.
        line.handle_turn(mean(30.0), Duration::from_secs(9));
        assert_eq!(line.start(), Some(mean(30.0)));
    }

    #[test]
    fn the_model_copy_leaves_the_mean_to_the_command_line() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let model = tmp.path().join("model");
        std::fs::create_dir_all(&model).expect("model dir");
        std::fs::write(
            model.join("feat.params"),
            "-cmn batch\n-cmninit 41.00,-5.29,-0.12,5.09,2.48,-4.07,-1.37,-1.78,-5.08,-2.05,\
             -6.45,-1.42,1.17\n-model ptm\n",
        )
        .expect("params");
        std::fs::write(model.join("means"), "the means").expect("means");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let copy = without_starting_mean(&model, &work).expect("copied");
        assert_eq!(copy.starting_mean.map(|m| m.0[0]), Some(41.0));
        let params = std::fs::read_to_string(copy.dir.join("feat.params")).expect("params");
        assert_eq!(params, "-cmn batch\n-model ptm\n");
        assert_eq!(
            std::fs::read_to_string(copy.dir.join("means")).expect("linked"),
            "the means"
        );
        // Asked again (another call): the same directory, not rewritten.
        assert_eq!(without_starting_mean(&model, &work).expect("again"), copy);
    }
}
