//! Lifeguard's local health multiplier: how much this node distrusts itself. Missed nacks,
//! failed probes and being suspected raise it; successful probes lower it; probe interval and
//! timeout are scaled by `1 + score`, so a slow node stops accusing healthy ones.

/// The local health score (memberlist's `awareness`).
#[derive(Debug, Clone)]
pub(crate) struct Awareness {
    /// Current score, `0 ..= max - 1`; 0 is healthy.
    score: u32,
    /// `Config::awareness_max_multiplier`: the score stays below it.
    max: u32,
}

impl Awareness {
    pub(crate) fn new(max: u32) -> Self {
        Self { score: 0, max }
    }

    /// Applies a change, clamped to `0 ..= max - 1`.
    pub(crate) fn apply(&mut self, delta: i32) {
        let next = self.score as i64 + delta as i64;
        self.score = next.clamp(0, self.max.saturating_sub(1) as i64) as u32;
    }

    pub(crate) fn score(&self) -> u32 {
        self.score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_clamped() {
        let mut a = Awareness::new(8);
        a.apply(-1);
        assert_eq!(a.score(), 0);
        a.apply(100);
        assert_eq!(a.score(), 7);
        a.apply(-3);
        assert_eq!(a.score(), 4);
    }
}
