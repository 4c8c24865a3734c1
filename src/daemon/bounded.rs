//! A map that holds at most `capacity` entries and forgets the oldest inserted first: what the daemon remembers
//! in memory for a process meant to run for months (series dispatched or skipped, LN reads waiting for their
//! study, identifiers) stays bounded, whatever arrives.

use std::collections::{BTreeMap, VecDeque};

/// A map of at most `capacity` entries, oldest insertion forgotten first.
#[derive(Debug, Clone)]
pub struct BoundedMap<K: Ord + Clone, V> {
    entries: BTreeMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Ord + Clone, V> BoundedMap<K, V> {
    /// An empty map of at most `capacity` (≥ 1) entries.
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            entries: BTreeMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Insert or replace; a new key past the capacity forgets the oldest. Returns whether `key` was new.
    pub fn insert(&mut self, key: K, value: V) -> bool {
        if let Some(v) = self.entries.get_mut(&key) {
            *v = value;
            return false;
        }
        self.order.push_back(key.clone());
        self.entries.insert(key, value);
        while self.entries.len() > self.capacity {
            let Some(old) = self.order.pop_front() else { break };
            self.entries.remove(&old);
        }
        true
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// Whether `key` is held.
    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Forget `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let v = self.entries.remove(key)?;
        self.order.retain(|k| k != key);
        Some(v)
    }

    /// The entries, oldest insertion first.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.order.iter().filter_map(|k| self.entries.get(k).map(|v| (k, v)))
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A set of at most `capacity` keys, oldest forgotten first.
pub type BoundedSet<K> = BoundedMap<K, ()>;

impl<K: Ord + Clone> BoundedMap<K, ()> {
    /// Add `key`; returns whether it was new.
    pub fn add(&mut self, key: K) -> bool {
        self.insert(key, ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_its_capacity_the_oldest_insertion_is_forgotten_and_replacing_keeps_its_place() {
        let mut m = BoundedMap::new(3);
        for k in 0..3 {
            assert!(m.insert(k, k * 10));
        }
        assert!(!m.insert(0, 99), "0 is replaced, not new");
        assert!(m.insert(3, 30));
        assert_eq!(m.len(), 3);
        assert!(!m.contains_key(&0), "0 was the oldest insertion");
        assert_eq!((m.get(&1), m.get(&3)), (Some(&10), Some(&30)));
        assert_eq!(m.remove(&1), Some(10));
        for k in 10..1000 {
            m.insert(k, k);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.order.len(), 3, "the order does not grow either");
        let mut s = BoundedSet::new(2);
        assert!(s.add("a") && s.add("b") && !s.add("a") && s.add("c"));
        assert!(!s.contains_key(&"a") && s.contains_key(&"c"));
    }
}
