//! Log lines whose rate a peer controls (refused handshakes, refused claims, push-pulls
//! refused for another cluster name, refutations of this node's suspicion) are held to one
//! line per kind every [`PEER_LOG_EVERY`], and each line says how many of its kind were held
//! back since the last: a peer holding a cluster certificate must not be able to fill the
//! log. Only the log is limited; the counters count every event.

use std::time::{Duration, Instant};

/// At most one line of each kind this often.
pub(crate) const PEER_LOG_EVERY: Duration = Duration::from_secs(10);

/// When each kind of line was last logged, and how many of that kind were held back since.
/// Kinds are static strings (reasons, alert names), so no peer can grow the table.
#[derive(Debug, Default)]
pub(crate) struct LogLimit {
    kinds: Vec<Kind>,
}

#[derive(Debug)]
struct Kind {
    key: &'static str,
    logged_at: Instant,
    held_back: u64,
}

impl LogLimit {
    /// A line of kind `key` at `now`: `Some(n)` when it may be logged, `n` being the lines of
    /// that kind held back since the last one logged; `None` when it is held back (and
    /// counted for the next).
    pub(crate) fn allow(&mut self, key: &'static str, now: Instant) -> Option<u64> {
        match self.kinds.iter_mut().find(|k| k.key == key) {
            Some(k) if now.saturating_duration_since(k.logged_at) < PEER_LOG_EVERY => {
                k.held_back += 1;
                None
            }
            Some(k) => {
                k.logged_at = now;
                Some(std::mem::take(&mut k.held_back))
            }
            None => {
                self.kinds.push(Kind {
                    key,
                    logged_at: now,
                    held_back: 0,
                });
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_period_and_the_next_says_how_many_were_held_back() {
        let mut limit = LogLimit::default();
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(limit.allow("a", t0), Some(0), "the first line is logged");
        for i in 1..=5 {
            assert_eq!(limit.allow("a", t0 + i * second), None, "within the period");
        }
        assert_eq!(limit.allow("b", t0 + second), Some(0), "kinds are apart");
        assert_eq!(
            limit.allow("a", t0 + PEER_LOG_EVERY),
            Some(5),
            "a period after the last line: logged, with the count held back"
        );
        assert_eq!(limit.allow("a", t0 + PEER_LOG_EVERY + second), None);
        assert_eq!(limit.allow("a", t0 + 3 * PEER_LOG_EVERY), Some(1));
        assert_eq!(limit.allow("b", t0 + 3 * PEER_LOG_EVERY), Some(0));
    }

    #[test]
    fn a_flood_of_a_thousand_lines_a_second_logs_one_per_period() {
        let mut limit = LogLimit::default();
        let t0 = Instant::now();
        let logged = (0..60_000u64)
            .filter(|ms| {
                limit
                    .allow("flood", t0 + Duration::from_millis(*ms))
                    .is_some()
            })
            .count();
        assert_eq!(logged, 6, "60 s of flood, one line per 10 s");
    }
}
