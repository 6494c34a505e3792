//! Reading the US-English model's mixture weights. Debian's `pocketsphinx-en-us` ships them only
//! as `sendump`, pocketsphinx's compressed form: one byte per weight, the negated log (base
//! 1.0001) shifted right by 10 bits. The adaptation tools of `sphinxtrain` read the plain S3
//! `mixture_weights` file instead, so this turns one into the other, with no I/O.

/// What went wrong reading a `sendump`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SendumpError {
    /// The file ends early or its header does not describe what follows.
    #[error("sendump is malformed: {0}")]
    Malformed(&'static str),
}

/// The weights: `[senone][feature stream][density]`, each row summing to one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MixtureWeights {
    /// Senones (tied states).
    pub senones: usize,
    /// Feature streams.
    pub streams: usize,
    /// Gaussian densities per stream.
    pub densities: usize,
    /// The weights, senone-major.
    pub weights: Vec<f32>,
}

/// `ln(1.0001) * 1024`: one step of a stored byte, in natural log units.
const STEP: f64 = 0.000_099_995_000_333_308_33 * 1024.0;

fn read_i32(bytes: &[u8], at: &mut usize) -> Result<i32, SendumpError> {
    let word = bytes
        .get(*at..*at + 4)
        .ok_or(SendumpError::Malformed("truncated header"))?;
    *at += 4;
    Ok(i32::from_le_bytes([word[0], word[1], word[2], word[3]]))
}

/// Parses a little-endian `sendump` without clusters (the en-us model's form).
pub(crate) fn parse_sendump(bytes: &[u8]) -> Result<MixtureWeights, SendumpError> {
    let mut at = 0;
    let mut streams = None;
    loop {
        let len = read_i32(bytes, &mut at)?;
        if len == 0 {
            break;
        }
        let len = usize::try_from(len).map_err(|_| SendumpError::Malformed("negative length"))?;
        let text = bytes
            .get(at..at + len)
            .ok_or(SendumpError::Malformed("truncated header string"))?;
        at += len;
        let text = String::from_utf8_lossy(text);
        let text = text.trim_end_matches('\0');
        if let Some(n) = text.strip_prefix("feature_count ") {
            streams = n.trim().parse::<usize>().ok();
        }
        if let Some(n) = text.strip_prefix("cluster_count ") {
            if n.trim() != "0" {
                return Err(SendumpError::Malformed(
                    "clustered weights are not supported",
                ));
            }
        }
    }
    let streams = streams.ok_or(SendumpError::Malformed("no feature_count"))?;
    let densities = usize::try_from(read_i32(bytes, &mut at)?)
        .map_err(|_| SendumpError::Malformed("negative density count"))?;
    let senones = usize::try_from(read_i32(bytes, &mut at)?)
        .map_err(|_| SendumpError::Malformed("negative senone count"))?;
    let count = streams * densities * senones;
    let data = bytes.get(at..at + count).ok_or(SendumpError::Malformed(
        "fewer weights than the header says",
    ))?;
    // Stored [stream][density][senone]; wanted [senone][stream][density], normalised.
    let mut weights = vec![0f32; count];
    for stream in 0..streams {
        for density in 0..densities {
            let row = &data[(stream * densities + density) * senones..][..senones];
            for (senone, byte) in row.iter().enumerate() {
                let w = (-f64::from(*byte) * STEP).exp();
                weights[(senone * streams + stream) * densities + density] = w as f32;
            }
        }
    }
    for row in weights.chunks_mut(densities.max(1)) {
        let sum: f32 = row.iter().sum();
        if sum > 0.0 {
            row.iter_mut().for_each(|w| *w /= sum);
        }
    }
    Ok(MixtureWeights {
        senones,
        streams,
        densities,
        weights,
    })
}

impl MixtureWeights {
    /// The S3 binary `mixture_weights` file `sphinxtrain` reads (no checksum).
    pub(crate) fn to_s3(&self) -> Vec<u8> {
        let mut out = b"s3\nversion 1.0\nendhdr\n".to_vec();
        out.extend_from_slice(&0x1122_3344u32.to_le_bytes());
        for n in [
            self.senones,
            self.streams,
            self.densities,
            self.weights.len(),
        ] {
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
        }
        for w in &self.weights {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sendump(streams: usize, densities: usize, senones: usize, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in [
            "BEGIN FILE FORMAT DESCRIPTION".to_string(),
            "cluster_count 0".to_string(),
            format!("feature_count {streams}"),
        ] {
            let text = format!("{line}\0");
            out.extend_from_slice(&(text.len() as i32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&(densities as i32).to_le_bytes());
        out.extend_from_slice(&(senones as i32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn weights_are_reordered_by_senone_and_normalised() {
        // One stream, two densities, three senones: bytes [density][senone].
        let file = sendump(1, 2, 3, &[0, 0, 10, 0, 255, 10]);
        let mixw = parse_sendump(&file).expect("parses");
        assert_eq!((mixw.senones, mixw.streams, mixw.densities), (3, 1, 2));
        let w = &mixw.weights;
        assert!(
            (w[0] - 0.5).abs() < 1e-6 && (w[1] - 0.5).abs() < 1e-6,
            "{w:?}"
        );
        assert!(w[2] > 0.999 && w[3] < 0.001, "{w:?}");
        assert!((w[4] - 0.5).abs() < 1e-6, "{w:?}");
        let s3 = mixw.to_s3();
        assert!(s3.starts_with(b"s3\nversion 1.0\nendhdr\n"));
        assert_eq!(s3.len(), 22 + 4 + 16 + 6 * 4);
    }

    #[test]
    fn a_short_or_clustered_file_is_an_error_not_a_panic() {
        let file = sendump(1, 2, 3, &[0, 0, 10]);
        assert!(parse_sendump(&file).is_err());
        assert!(parse_sendump(&[1, 0, 0]).is_err());
        assert!(parse_sendump(&[]).is_err());
        let mut clustered = sendump(1, 1, 1, &[0]);
        clustered[4 + 30 + 4 + 14] = b'3';
        assert!(parse_sendump(&clustered).is_err());
    }
}
