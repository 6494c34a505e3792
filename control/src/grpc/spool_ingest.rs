//! Opening an edge's sealed recording spool as it arrives (`recording_spool.rs` in
//! freya-shared): every chunk is checked before its audio goes on to be sealed at rest, and the
//! WAV header the edge wrote at the start (its lengths unknown then, and not rewritable in a
//! sealed spool) is given the true lengths, known from the spool's length before a byte is read.
//! Anything that does not open — a flipped byte, chunks out of order, a spool cut short, a key
//! this control plane does not hold — is refused with a status naming why, and logged; the
//! caller then removes what it wrote and acknowledges nothing.

use tonic::Status;

use freya_proto::v1::RecordingHeader;
use freya_shared::recording_spool::{RecordingSecretKey, SpoolError, SpoolReader};

/// The canonical header of a 16-bit PCM WAV, as the edge's recorder writes it.
const WAV_HEADER: usize = 44;
/// The most PCM a WAV's 32-bit lengths can describe.
const MAX_DATA: u64 = u32::MAX as u64 - 36;

/// One upload's spool being opened into the plaintext WAV.
pub(super) struct SpoolIngest {
    reader: SpoolReader,
    /// The WAV's data length, from the spool's length.
    data_len: u32,
    /// The plaintext's first bytes until the header is whole.
    head: Vec<u8>,
    names: Names,
}

/// Which upload this is, for the log line of a refusal.
struct Names {
    edge_id: String,
    call_id: String,
    recording_id: String,
}

impl SpoolIngest {
    /// Prepares to open the spool `header` announces with one of `keys`.
    pub(super) fn new(
        keys: Vec<RecordingSecretKey>,
        header: &RecordingHeader,
        edge_id: &str,
    ) -> Result<Self, Status> {
        let names = Names {
            edge_id: edge_id.to_owned(),
            call_id: header.call_id.clone(),
            recording_id: header.recording_id.clone(),
        };
        let reader = SpoolReader::new(keys, &header.recording_id, header.bytes, header.interrupted)
            .map_err(|e| names.refuse(e))?;
        let data_len = reader
            .plain_len()
            .checked_sub(WAV_HEADER as u64)
            .filter(|&d| d <= MAX_DATA)
            .and_then(|d| u32::try_from(d).ok())
            .ok_or_else(|| {
                names.refuse_because("the spool holds no whole WAV header, or more than 4 GiB")
            })?;
        Ok(Self {
            reader,
            data_len,
            head: Vec::with_capacity(WAV_HEADER),
            names,
        })
    }

    /// The WAV's length once opened.
    pub(super) fn wav_len(&self) -> u64 {
        WAV_HEADER as u64 + u64::from(self.data_len)
    }

    /// Takes the next bytes sent; appends the WAV's bytes they complete to `wav`.
    pub(super) fn push(&mut self, data: &[u8], wav: &mut Vec<u8>) -> Result<(), Status> {
        let start = wav.len();
        self.reader
            .push(data, wav)
            .map_err(|e| self.names.refuse(e))?;
        if self.head.len() < WAV_HEADER {
            let take = (WAV_HEADER - self.head.len()).min(wav.len() - start);
            self.head.extend(wav.drain(start..start + take));
            if self.head.len() == WAV_HEADER {
                self.fix_header()?;
                wav.splice(start..start, self.head.iter().copied());
            }
        }
        Ok(())
    }

    /// Checks that the whole spool was read.
    pub(super) fn finish(self) -> Result<(), Status> {
        let Self { reader, names, .. } = self;
        reader.finish().map_err(|e| names.refuse(e))
    }

    /// Checks the header is the recorder's canonical 16-bit PCM one and writes its lengths.
    fn fix_header(&mut self) -> Result<(), Status> {
        let h = &self.head;
        let canonical = h.get(0..4) == Some(b"RIFF")
            && h.get(8..16) == Some(b"WAVEfmt ")
            && h.get(16..20) == Some(&16u32.to_le_bytes()[..])
            && h.get(20..22) == Some(&1u16.to_le_bytes()[..])
            && matches!(h.get(22..24), Some([1 | 2, 0]))
            && h.get(34..36) == Some(&16u16.to_le_bytes()[..])
            && h.get(36..40) == Some(b"data");
        if !canonical {
            return Err(self
                .names
                .refuse_because("the spool's audio does not start with a 16-bit PCM WAV header"));
        }
        if let Some(riff) = self.head.get_mut(4..8) {
            riff.copy_from_slice(&(36 + self.data_len).to_le_bytes());
        }
        if let Some(data) = self.head.get_mut(40..44) {
            data.copy_from_slice(&self.data_len.to_le_bytes());
        }
        Ok(())
    }
}

impl Names {
    fn refuse(&self, error: SpoolError) -> Status {
        match error {
            SpoolError::UnknownKey(_) => {
                tracing::error!(edge = %self.edge_id, call = %self.call_id, recording = %self.recording_id,
                    %error, "refused a sealed recording: it is sealed to a key this control plane does not hold (restore that recording key from a backup to receive it)");
                Status::not_found(error.to_string())
            }
            _ => self.refuse_because(&error.to_string()),
        }
    }

    fn refuse_because(&self, why: &str) -> Status {
        tracing::error!(edge = %self.edge_id, call = %self.call_id, recording = %self.recording_id,
            error = %why, "refused a sealed recording");
        Status::invalid_argument(format!("the recording spool is refused: {why}"))
    }
}
