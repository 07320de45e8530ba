//! The metadata key/value state: the durable home of broker metadata (topics, producer state,
//! committed offsets in later layers). It lives in the ring itself: changes are `Meta` batches
//! written with the data (so a change and the records it belongs with can share one CRC), and
//! the whole state is carried forward in the checkpoint that opens every segment, so reclaiming
//! the oldest segment never loses it. Its RAM is bounded by `meta_bytes_max`.

use super::format::{MetaOp, meta_entry_bytes};
use std::collections::BTreeMap;

/// Namespaces reserved so far (documented in `docs/FORMAT.md`); later layers add theirs.
pub mod namespace {
    /// Tests and tools.
    pub const TEST: u8 = 0;
    /// Topics (broker).
    pub const TOPICS: u8 = 1;
    /// Idempotent producer state.
    pub const PRODUCERS: u8 = 2;
    /// Consumer group committed offsets.
    pub const GROUP_OFFSETS: u8 = 3;
    /// Forwarder cursor hints.
    pub const FORWARDER: u8 = 4;
}

/// The in-RAM metadata state. Invariant: `bytes` is the sum of `meta_entry_bytes` over all
/// entries and never exceeds the limit it was checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaState {
    entries: BTreeMap<(u8, Vec<u8>), Vec<u8>>,
    bytes: u64,
}

impl MetaState {
    pub fn get(&self, namespace: u8, key: &[u8]) -> Option<&[u8]> {
        self.entries
            .get(&(namespace, key.to_vec()))
            .map(|v| v.as_slice())
    }

    /// All entries of one namespace, ascending by key.
    pub fn iter_namespace(&self, namespace: u8) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .range((namespace, Vec::new())..)
            .take_while(move |((ns, _), _)| *ns == namespace)
            .map(|((_, k), v)| (k.as_slice(), v.as_slice()))
    }

    /// The entries of one namespace whose key starts with `prefix`, ascending by key.
    pub fn iter_prefix<'a>(
        &'a self,
        namespace: u8,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.entries
            .range((namespace, prefix.to_vec())..)
            .take_while(move |((ns, k), _)| *ns == namespace && k.starts_with(prefix))
            .map(|((_, k), v)| (k.as_slice(), v.as_slice()))
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The size the state would have after applying `ops`.
    pub fn bytes_after(&self, ops: &[MetaOp]) -> u64 {
        // Apply to a small overlay of touched keys so repeated keys in `ops` count once.
        let mut overlay: BTreeMap<(u8, &[u8]), Option<u64>> = BTreeMap::new();
        for op in ops {
            match op {
                MetaOp::Put {
                    namespace,
                    key,
                    value,
                } => {
                    overlay.insert((*namespace, key), Some(meta_entry_bytes(key, value)));
                }
                MetaOp::Delete { namespace, key } => {
                    overlay.insert((*namespace, key), None);
                }
            }
        }
        let mut bytes = self.bytes;
        for ((ns, key), new) in overlay {
            if let Some(old) = self.entries.get(&(ns, key.to_vec())) {
                bytes -= meta_entry_bytes(key, old);
            }
            bytes += new.unwrap_or(0);
        }
        bytes
    }

    /// Applies `ops` in order. The caller checked `bytes_after` against the limit.
    pub fn apply(&mut self, ops: &[MetaOp]) {
        for op in ops {
            match op {
                MetaOp::Put {
                    namespace,
                    key,
                    value,
                } => {
                    self.bytes += meta_entry_bytes(key, value);
                    if let Some(old) = self
                        .entries
                        .insert((*namespace, key.clone()), value.clone())
                    {
                        self.bytes -= meta_entry_bytes(key, &old);
                    }
                }
                MetaOp::Delete { namespace, key } => {
                    if let Some(old) = self.entries.remove(&(*namespace, key.clone())) {
                        self.bytes -= meta_entry_bytes(key, &old);
                    }
                }
            }
        }
    }

    /// The state as checkpoint entries, ascending.
    pub fn to_entries(&self) -> Vec<(u8, Vec<u8>, Vec<u8>)> {
        self.entries
            .iter()
            .map(|((ns, k), v)| (*ns, k.clone(), v.clone()))
            .collect()
    }

    /// Replaces the state with a checkpoint's entries.
    pub fn replace(&mut self, entries: &[(u8, Vec<u8>, Vec<u8>)]) {
        self.entries.clear();
        self.bytes = 0;
        for (ns, k, v) in entries {
            self.bytes += meta_entry_bytes(k, v);
            self.entries.insert((*ns, k.clone()), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> MetaOp {
        MetaOp::Put {
            namespace: namespace::TEST,
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn bytes_track_puts_overwrites_and_deletes() {
        let mut m = MetaState::default();
        let ops = [put("a", "1"), put("a", "22"), put("b", "3")];
        let predicted = m.bytes_after(&ops);
        m.apply(&ops);
        assert_eq!(m.bytes(), predicted);
        assert_eq!(
            m.bytes(),
            meta_entry_bytes(b"a", b"22") + meta_entry_bytes(b"b", b"3")
        );
        let del = [MetaOp::Delete {
            namespace: namespace::TEST,
            key: b"a".to_vec(),
        }];
        assert_eq!(m.bytes_after(&del), meta_entry_bytes(b"b", b"3"));
        m.apply(&del);
        assert_eq!(m.get(namespace::TEST, b"a"), None);
        assert_eq!(m.get(namespace::TEST, b"b"), Some(&b"3"[..]));
        let copy = {
            let mut c = MetaState::default();
            c.replace(&m.to_entries());
            c
        };
        assert_eq!(copy, m);
    }
}
