//! What goes into one leg's outgoing 20 ms frame besides the agent's playback: the other
//! bridged parties' audio (summed, saturating), and where the agent's own voice goes — to this
//! leg (`Here`), nowhere for now (`Paused`: its queued speech waits), or elsewhere (`Away`: the
//! frame is taken out of the queue for the leg it whispers to and this leg does not hear it).
//! A [`CallMedia`](super::media::CallMedia) owns one; the call's core fills it every tick
//! before the leg's packet is chosen. No allocation: two frame buffers per leg.

use super::media::FRAME_SAMPLES;

/// Where the agent's queued speech goes on this leg's ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum VoiceRoute {
    /// This leg hears the agent (a call without a bridge).
    #[default]
    Here,
    /// Nobody hears the agent; its speech waits in the queue.
    Paused,
    /// The agent speaks to another leg: its frame is taken out for that leg, unheard here.
    Away,
}

/// One leg's outgoing mix for the tick now due.
#[derive(Debug)]
pub(crate) struct OutMix {
    route: VoiceRoute,
    others: [i16; FRAME_SAMPLES],
    pending: bool,
    away: [i16; FRAME_SAMPLES],
    away_fresh: bool,
}

impl Default for OutMix {
    fn default() -> Self {
        Self {
            route: VoiceRoute::Here,
            others: [0; FRAME_SAMPLES],
            pending: false,
            away: [0; FRAME_SAMPLES],
            away_fresh: false,
        }
    }
}

impl OutMix {
    /// Where the agent's voice goes from the next tick on.
    pub(crate) fn set_route(&mut self, route: VoiceRoute) {
        self.route = route;
    }

    /// Adds another party's frame to the next packet (saturating: loud parties clip rather
    /// than wrap round).
    pub(crate) fn add(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        if !self.pending {
            self.others = [0; FRAME_SAMPLES];
            self.pending = true;
        }
        add_saturating(&mut self.others, frame);
    }

    /// The tick's frame is final: the agent's part moves out when it speaks elsewhere, and the
    /// other parties' audio is added.
    pub(crate) fn finish(&mut self, pcm: &mut [i16; FRAME_SAMPLES]) {
        if self.route == VoiceRoute::Away {
            self.away = *pcm;
            self.away_fresh = true;
            *pcm = [0; FRAME_SAMPLES];
        }
        if std::mem::take(&mut self.pending) {
            add_saturating(pcm, &self.others);
        }
    }

    /// The tick passed without a packet (hold, a key press): what was mixed for it is dropped,
    /// lest it be added twice.
    pub(crate) fn discard(&mut self) {
        self.pending = false;
    }

    /// The agent's frame of the last tick when it speaks elsewhere (once).
    pub(crate) fn take_away(&mut self) -> Option<&[i16; FRAME_SAMPLES]> {
        std::mem::take(&mut self.away_fresh).then_some(&self.away)
    }
}

/// [`OutMix::discard`] on a leg's mix, if it has one.
pub(crate) fn discard(mix: &mut Option<Box<OutMix>>) {
    if let Some(mix) = mix {
        mix.discard();
    }
}

/// Whether the agent's voice is paused on this leg (never without a mix).
pub(crate) fn paused(mix: &Option<Box<OutMix>>) -> bool {
    mix.as_ref().is_some_and(|m| m.route == VoiceRoute::Paused)
}

/// [`OutMix::finish`] on a leg's mix, if it has one.
pub(crate) fn finish(mix: &mut Option<Box<OutMix>>, pcm: &mut [i16; FRAME_SAMPLES]) {
    if let Some(mix) = mix {
        mix.finish(pcm);
    }
}

/// `into += from`, sample by sample, clipped to the 16-bit range.
pub(crate) fn add_saturating(into: &mut [i16; FRAME_SAMPLES], from: &[i16; FRAME_SAMPLES]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a = a.saturating_add(*b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loud_parties_clip_instead_of_wrapping() {
        let mut pcm = [30_000i16; FRAME_SAMPLES];
        let mut mix = OutMix::default();
        mix.add(&[10_000; FRAME_SAMPLES]);
        mix.add(&[-100; FRAME_SAMPLES]);
        mix.finish(&mut pcm);
        assert!(pcm.iter().all(|s| *s == i16::MAX));
    }

    #[test]
    fn a_whispering_agent_is_taken_out_of_this_legs_frame() {
        let mut pcm = [700i16; FRAME_SAMPLES];
        let mut mix = OutMix::default();
        mix.set_route(VoiceRoute::Away);
        mix.add(&[5; FRAME_SAMPLES]);
        mix.finish(&mut pcm);
        assert!(pcm.iter().all(|s| *s == 5), "only the other party");
        assert_eq!(mix.take_away().map(|f| f[0]), Some(700));
        assert!(mix.take_away().is_none(), "taken once");
    }

    #[test]
    fn a_mix_for_a_tick_that_sent_nothing_is_not_added_later() {
        let mut mix = OutMix::default();
        mix.add(&[9; FRAME_SAMPLES]);
        mix.discard();
        let mut pcm = [0i16; FRAME_SAMPLES];
        mix.finish(&mut pcm);
        assert!(pcm.iter().all(|s| *s == 0));
    }
}
