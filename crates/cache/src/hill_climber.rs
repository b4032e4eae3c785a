//! # The hill climber: sizing W-TinyLFU's window by watching the hit ratio
//!
//! W-TinyLFU's window ([`crate::tinylfu`]) decides how much of the cache goes to
//! *recency* (every newcomer gets in, LRU order) and how much to *frequency* (the main
//! space, guarded by the admission filter). No fixed split suits every workload:
//!
//! - a workload whose popularity is stable (Zipf: the same keys stay hot) wants a tiny
//!   window, so nearly all memory holds the proven-frequent keys;
//! - a workload with bursts of recency (a new key is hammered for a while and then
//!   forgotten: news, sessions, a loop slightly larger than the main space) wants a large
//!   one, because such keys have no frequency yet when they matter.
//!
//! Caffeine therefore *tunes* the split while it runs, with the simplest optimiser there
//! is — hill climbing on one variable, the window's size, with the hit ratio as the height
//! of the hill:
//!
//! 1. Count hits and misses over a *sample* of requests: the frequency sketch's aging
//!    period (80 × the entries it is sized for), so one sample sees one "generation" of
//!    counts. Caffeine samples 10 × the entries; on a Zipf trace that is so short that
//!    the sample's hit ratio moves by about its own noise (half a point at 1,000
//!    entries), and the climber wanders after noise instead of climbing.
//! 2. At the end of each sample compare its hit ratio with the previous sample's. If it
//!    went up (or stayed), the last step was in a good direction: take another step the
//!    same way. If it went down, turn round.
//! 3. Steps shrink geometrically (× 0.98 each sample), so the window settles near the
//!    top of the hill instead of oscillating around it forever.
//! 4. A large change in the hit ratio (5 points or more) means the *workload* changed,
//!    not the window: the step size restarts at its initial 6.25% of the capacity, in the
//!    direction the last step suggested, so the climber can travel far again.
//!
//! The first step goes towards a smaller window (Caffeine's choice: the initial 1% is
//! already small, so a frequency-friendly workload confirms quickly). The climber only
//! proposes a new window budget, clamped to `[0, MAX_WINDOW_PERCENT]` of the capacity;
//! the policy moves no entries eagerly — a larger window takes its room from the main
//! space's next victims, a smaller one sends its overflow through the admission contest.

/// The initial step, and the step after a restart, as a share of the capacity.
const STEP_PERCENT: f64 = 6.25;
/// Each sample's step is the previous one times this.
const STEP_DECAY: f64 = 0.98;
/// A hit-ratio change at least this large restarts the step size.
const RESTART_THRESHOLD: f64 = 0.05;
/// The window never grows past this share of the capacity (the main space keeps the rest,
/// as Caffeine's protected segment bounds its window).
pub const MAX_WINDOW_PERCENT: u64 = 80;

#[derive(Debug, Clone, Default)]
pub struct HillClimber {
    hits: u64,
    misses: u64,
    previous_hit_ratio: f64,
    /// The next step in bytes: positive grows the window, negative shrinks it.
    step: f64,
}

impl HillClimber {
    /// Starts over for a cache of `capacity` bytes (a new size, a flush).
    pub fn restart(&mut self, capacity: u64) {
        *self = HillClimber {
            step: -(capacity as f64) * STEP_PERCENT / 100.0,
            ..HillClimber::default()
        };
    }

    pub fn record_hit(&mut self) {
        self.hits += 1;
    }

    pub fn record_miss(&mut self) {
        self.misses += 1;
    }

    /// Once `sample` requests have been counted: the window budget to use next, moved one
    /// step from `window` (see the module docs). `None` while the sample is incomplete.
    pub fn adjust(&mut self, window: u64, capacity: u64, sample: u64) -> Option<u64> {
        let requests = self.hits + self.misses;
        if requests < sample.max(1) {
            return None;
        }
        let hit_ratio = self.hits as f64 / requests as f64;
        let change = hit_ratio - self.previous_hit_ratio;
        // Up (or flat): keep going the same way; down: turn round.
        let amount = if change >= 0.0 { self.step } else { -self.step };
        self.step = if change.abs() >= RESTART_THRESHOLD {
            (capacity as f64) * STEP_PERCENT / 100.0 * amount.signum()
        } else {
            amount * STEP_DECAY
        };
        self.previous_hit_ratio = hit_ratio;
        self.hits = 0;
        self.misses = 0;
        let max = capacity * MAX_WINDOW_PERCENT / 100;
        let next = (window as f64 + amount).clamp(0.0, max as f64);
        Some(next as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds one sample with the given hit ratio and returns the proposed window.
    fn sample(c: &mut HillClimber, window: u64, ratio: f64) -> u64 {
        let hits = (ratio * 1000.0) as u64;
        for _ in 0..hits {
            c.record_hit();
        }
        for _ in hits..1000 {
            c.record_miss();
        }
        c.adjust(window, 10_000, 1000).unwrap()
    }

    #[test]
    fn climbs_while_the_hit_ratio_improves_and_turns_when_it_falls() {
        let mut c = HillClimber::default();
        c.restart(10_000);
        assert_eq!(c.adjust(5000, 10_000, 1000), None, "no sample yet");
        // First sample: 0.50 vs nothing, an improvement: the first step (shrink) is taken.
        let w = sample(&mut c, 5000, 0.50);
        assert_eq!(w, 5000 - 625);
        // Better again (by less than the restart threshold): the same direction.
        let w2 = sample(&mut c, w, 0.52);
        assert_eq!(w2, w - 625);
        // Worse: turn round, with the step decayed by 2%.
        let w3 = sample(&mut c, w2, 0.51);
        assert_eq!(w3, w2 + 612);
    }

    #[test]
    fn a_workload_change_restarts_the_step_and_the_window_stays_in_bounds() {
        let mut c = HillClimber::default();
        c.restart(10_000);
        let mut w = 100;
        for _ in 0..50 {
            w = sample(&mut c, w, 0.5);
        }
        assert_eq!(
            w, 0,
            "steady improvement downwards is clamped at an empty window"
        );
        // The step has decayed to 625 × 0.98^50 ≈ 227 bytes. A jump of 20 points means the
        // workload changed: the next step is a full 6.25% again.
        w = sample(&mut c, w, 0.7);
        assert_eq!(w, 0, "still going down, still clamped");
        let next = sample(&mut c, w, 0.3);
        assert_eq!(next, 625, "worse: turned round with the restarted step");
        let mut high = next;
        for _ in 0..500 {
            high = sample(&mut c, high, 0.3);
        }
        assert!(high <= 10_000 * MAX_WINDOW_PERCENT / 100);
    }
}
