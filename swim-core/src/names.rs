//! Member names interned into compact ids: one table per node, whose ids are given again
//! once their member is forgotten, or one shared by every node of a simulation.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use crate::membership::{fingerprint_bytes, MemberId};

/// Names interned once into compact ids. Per node, where the id of a member that has been
/// forgotten is given to the next new name (so ids stay as many as the names held); or shared
/// by every node of a simulation (so that ten thousand views do not each store ten thousand
/// strings), where names are never released.
#[derive(Debug, Default)]
pub(crate) struct NameTable {
    inner: Mutex<NameTableInner>,
}

#[derive(Debug, Default)]
struct NameTableInner {
    ids: HashMap<Arc<str>, MemberId, NameHashing>,
    /// By id; `None` for a released id.
    names: Vec<Option<Arc<str>>>,
    /// Released ids, to be given again (lowest first).
    free: BTreeSet<MemberId>,
    /// Shared by several views: no name may be released.
    shared: bool,
}

impl NameTable {
    /// A table shared by the nodes of a simulation: names are never released.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn shared() -> Self {
        let table = Self::default();
        let mut inner = table.lock();
        inner.shared = true;
        inner.ids = HashMap::with_hasher(NameHashing::Plain);
        drop(inner);
        table
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NameTableInner> {
        // A poisoned lock only means another thread panicked mid-insert of a name; the map
        // and vector are still consistent (the insert is two stores after all checks).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn intern(&self, name: &str) -> (MemberId, Arc<str>) {
        let mut inner = self.lock();
        if let Some((k, &id)) = inner.ids.get_key_value(name) {
            return (id, k.clone());
        }
        let name: Arc<str> = Arc::from(name);
        let id = match inner.free.pop_first() {
            Some(id) => {
                inner.names[id as usize] = Some(name.clone());
                id
            }
            None => {
                inner.names.push(Some(name.clone()));
                (inner.names.len() - 1) as MemberId
            }
        };
        inner.ids.insert(name.clone(), id);
        (id, name)
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<MemberId> {
        self.lock().ids.get(name).copied()
    }

    /// The id and the interned name of `name`, if it is held.
    pub(crate) fn get(&self, name: &str) -> Option<(MemberId, Arc<str>)> {
        let inner = self.lock();
        inner
            .ids
            .get_key_value(name)
            .map(|(k, &id)| (id, k.clone()))
    }

    /// Forgets the name of `id` (unless the table is shared), so the id can be given again.
    /// The caller holds nothing more keyed by it. Returns whether it was released.
    pub(crate) fn release(&self, id: MemberId) -> bool {
        let mut inner = self.lock();
        if inner.shared {
            return false;
        }
        let Some(name) = inner.names.get_mut(id as usize).and_then(Option::take) else {
            return false;
        };
        inner.ids.remove(&name);
        inner.free.insert(id);
        true
    }

    /// Names held.
    pub(crate) fn len(&self) -> usize {
        self.lock().ids.len()
    }
}

/// How a table hashes names. A node's own table, whose names come from peers, uses std's
/// keyed SipHash: a peer cannot pick names that collide. The simulator's shared table holds
/// only the names it made, and is read for every message delivered (the sender) and every
/// update in it (its subject), where SipHash took 4.5 % of a run's instructions: it uses an
/// unkeyed hash of eight bytes a step instead.
#[derive(Clone, Debug)]
enum NameHashing {
    Keyed(RandomState),
    Plain,
}

impl Default for NameHashing {
    fn default() -> Self {
        NameHashing::Keyed(RandomState::new())
    }
}

impl BuildHasher for NameHashing {
    type Hasher = NameHasher;

    fn build_hasher(&self) -> NameHasher {
        match self {
            NameHashing::Keyed(state) => NameHasher::Keyed(state.build_hasher()),
            NameHashing::Plain => NameHasher::Plain(0),
        }
    }
}

enum NameHasher {
    Keyed(DefaultHasher),
    Plain(u64),
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        match self {
            NameHasher::Keyed(h) => h.write(bytes),
            NameHasher::Plain(h) => *h = h.rotate_left(29) ^ fingerprint_bytes(bytes),
        }
    }

    fn finish(&self) -> u64 {
        match self {
            NameHasher::Keyed(h) => h.finish(),
            NameHasher::Plain(h) => *h,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_ids_are_given_to_new_names_unless_the_table_is_shared() {
        let t = NameTable::default();
        let (a, _) = t.intern("a");
        let (b, _) = t.intern("b");
        assert!(t.release(a));
        assert_eq!(t.lookup("a"), None);
        assert!(!t.release(a), "already released");
        let (c, _) = t.intern("c");
        assert_eq!(c, a, "the released id is given again");
        assert_eq!((t.len(), t.get("b").map(|(id, _)| id)), (2, Some(b)));
        let shared = NameTable::shared();
        let (x, _) = shared.intern("x");
        assert!(!shared.release(x));
        assert_eq!(shared.lookup("x"), Some(x));
    }
}
