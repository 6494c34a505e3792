//! The replay list of RFC 3711 section 3.3.2: a sliding window of packet indices already
//! accepted behind the highest one. An index older than the window, or one already marked in
//! it, is refused; a packet is only marked once it has authenticated, so junk can neither fill
//! the window nor move it.
//!
//! The window's size is configured (`[rtp] srtp_replay_window`, at least RFC 3711's 64); it is
//! kept as a bit array that shifts as the highest index moves forward.

/// Which indices of the last `size` behind the highest were seen.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// The highest index accepted, once one was.
    top: Option<u64>,
    /// Bit `i` set: index `top - i` was accepted. `size` bits in 64-bit words.
    seen: Vec<u64>,
    size: u64,
}

/// Why an index is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Already accepted once.
    Duplicate,
    /// Further behind the highest index than the window reaches.
    TooOld,
}

impl ReplayWindow {
    /// A window over `size` indices, rounded up to whole 64-bit words (at least one).
    pub fn new(size: u32) -> Self {
        let words = (size.max(64) as usize).div_ceil(64);
        Self {
            top: None,
            seen: vec![0; words],
            size: words as u64 * 64,
        }
    }

    /// Whether `index` may be accepted (does not mark it: see [`accept`](Self::accept)).
    pub fn check(&self, index: u64) -> Result<(), Replay> {
        let Some(top) = self.top else {
            return Ok(());
        };
        if index > top {
            return Ok(());
        }
        let behind = top - index;
        if behind >= self.size {
            return Err(Replay::TooOld);
        }
        let (word, bit) = ((behind / 64) as usize, behind % 64);
        match self.seen.get(word) {
            Some(w) if w & (1 << bit) != 0 => Err(Replay::Duplicate),
            _ => Ok(()),
        }
    }

    /// Marks `index` as accepted, moving the window when it is the new highest.
    pub fn accept(&mut self, index: u64) {
        let top = match self.top {
            Some(top) if index <= top => top,
            Some(top) => {
                self.shift(index - top);
                self.top = Some(index);
                index
            }
            None => {
                self.top = Some(index);
                index
            }
        };
        let behind = top - index;
        if behind < self.size {
            if let Some(w) = self.seen.get_mut((behind / 64) as usize) {
                *w |= 1 << (behind % 64);
            }
        }
    }

    /// Moves every mark `by` places further behind (the highest index went up by `by`).
    fn shift(&mut self, by: u64) {
        if by >= self.size {
            self.seen.fill(0);
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        for w in (0..self.seen.len()).rev() {
            let from = w.checked_sub(words);
            let mut value = from.map_or(0, |f| self.seen[f] << bits);
            if bits > 0 {
                if let Some(below) = from.and_then(|f| f.checked_sub(1)) {
                    value |= self.seen[below] >> (64 - bits);
                }
            }
            self.seen[w] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_indices_behind_the_window_are_refused() {
        let mut w = ReplayWindow::new(64);
        assert_eq!(w.check(10), Ok(()));
        w.accept(10);
        assert_eq!(w.check(10), Err(Replay::Duplicate));
        assert_eq!(w.check(9), Ok(()), "late but inside the window");
        w.accept(9);
        assert_eq!(w.check(9), Err(Replay::Duplicate));
        w.accept(200);
        assert_eq!(w.check(10), Err(Replay::TooOld));
        assert_eq!(w.check(137), Ok(()));
        assert_eq!(w.check(136), Err(Replay::TooOld));
        assert_eq!(w.check(200), Err(Replay::Duplicate));
    }

    #[test]
    fn marks_survive_shifts_across_words() {
        let mut w = ReplayWindow::new(256);
        for i in [1000, 990, 950, 900] {
            w.accept(i);
        }
        w.accept(1070);
        for i in [1000, 990, 950, 900, 1070] {
            assert_eq!(w.check(i), Err(Replay::Duplicate), "{i}");
        }
        for i in [1001, 991, 951, 901, 1069] {
            assert_eq!(w.check(i), Ok(()), "{i}");
        }
        assert_eq!(w.check(1070 - 256), Err(Replay::TooOld));
        assert_eq!(w.check(1070 - 255), Ok(()));
    }
}
