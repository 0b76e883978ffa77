//! Per-node collections that give their storage back once emptied.

use std::collections::{BTreeMap, BTreeSet};

/// A B-tree keeps its root node, room for eleven entries, after its last entry is removed.
/// In a simulation of many thousand nodes, every map that once held one relayed ping, one
/// suspicion or one queued update would keep one such node per member for the rest of the
/// run; emptied, it gives it back (a new one is allocated only when used again).
pub(crate) trait ReleaseWhenEmpty {
    fn release_when_empty(&mut self);
}

impl<K, V> ReleaseWhenEmpty for BTreeMap<K, V> {
    fn release_when_empty(&mut self) {
        if self.is_empty() {
            *self = BTreeMap::new();
        }
    }
}

impl<T> ReleaseWhenEmpty for BTreeSet<T> {
    fn release_when_empty(&mut self) {
        if self.is_empty() {
            *self = BTreeSet::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_map_is_a_new_one() {
        let mut m = BTreeMap::new();
        m.insert(1u32, [0u8; 64]);
        m.remove(&1);
        m.release_when_empty();
        assert!(m.is_empty());
        m.insert(2, [1; 64]);
        m.release_when_empty();
        assert_eq!(m.len(), 1, "a map with entries is left alone");
    }
}
