//! Memory a peer can make this node hold, bounded: the bytes of stream messages being read or
//! waiting for the driver, per peer and in total. A message holds its bytes from the first
//! chunk read until the protocol core has handled it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Which bound a stream message ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// This peer's messages hold `max_held_per_peer` already.
    Peer,
    /// All peers' messages hold `max_held_total` already.
    Total,
}

/// One peer's share of the bytes held, and everybody's.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    peer: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    peer_max: usize,
    total_max: usize,
}

impl Budget {
    /// The bound over all peers, from which each peer's budget is made.
    pub(crate) fn total(total_max: usize) -> Budget {
        Budget {
            peer: Arc::default(),
            total: Arc::default(),
            peer_max: total_max,
            total_max,
        }
    }

    /// A new peer's budget of at most `peer_max`, inside this total.
    pub(crate) fn for_peer(&self, peer_max: usize) -> Budget {
        Budget {
            peer: Arc::default(),
            total: self.total.clone(),
            peer_max,
            total_max: self.total_max,
        }
    }

    /// Bytes held now by this peer, and by everybody.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (
            self.peer.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    /// An empty hold on this budget.
    pub(crate) fn hold(&self) -> Held {
        Held {
            budget: self.clone(),
            bytes: 0,
        }
    }
}

/// Bytes taken from a budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Budget,
    bytes: usize,
}

impl Held {
    /// Takes `n` more bytes, unless that would exceed a bound (then nothing is taken).
    pub(crate) fn grow(&mut self, n: usize) -> Result<(), Exceeded> {
        let b = &self.budget;
        if b.peer.fetch_add(n, Ordering::AcqRel) + n > b.peer_max {
            b.peer.fetch_sub(n, Ordering::AcqRel);
            return Err(Exceeded::Peer);
        }
        if b.total.fetch_add(n, Ordering::AcqRel) + n > b.total_max {
            b.total.fetch_sub(n, Ordering::AcqRel);
            b.peer.fetch_sub(n, Ordering::AcqRel);
            return Err(Exceeded::Total);
        }
        self.bytes += n;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.peer.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget.total.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_stay_within_both_bounds_and_are_given_back() {
        let total = Budget::total(100);
        let (a, b) = (total.for_peer(60), total.for_peer(60));
        let mut ha = a.hold();
        ha.grow(50).unwrap();
        assert_eq!(ha.grow(20), Err(Exceeded::Peer));
        let mut hb = b.hold();
        hb.grow(40).unwrap();
        assert_eq!(hb.grow(20), Err(Exceeded::Total), "the total is shared");
        assert_eq!(b.held(), (40, 90), "a refused grow takes nothing");
        drop(ha);
        assert_eq!(a.held(), (0, 40));
        hb.grow(20).unwrap();
        drop(hb);
        assert_eq!(b.held(), (0, 0));
    }
}
