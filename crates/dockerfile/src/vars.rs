//! [`Vars`]: an environment (ENV, ARG or build-arg scope) in declaration order, with constant-time
//! lookups so that a stage with a hundred thousand variables still plans in linear time.

use crate::shell::Lookup;
use std::collections::HashMap;

/// Variables in declaration order. Setting an existing name changes its value in place (its
/// position stays), as ENV and ARG do in BuildKit's ordered environments.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// Declaration order; `None` marks a removed entry until the next compaction.
    entries: Vec<Option<(String, String)>>,
    /// Name to its slot in `entries`.
    index: HashMap<String, usize>,
}

impl Vars {
    /// Variables from pairs in order; a name given twice keeps its first position and its last
    /// value.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut v = Vars::default();
        for (k, val) in pairs {
            v.set(&k, &val);
        }
        v
    }

    pub fn set(&mut self, key: &str, value: &str) {
        match self.index.get(key) {
            Some(&i) => {
                if let Some((_, v)) = &mut self.entries[i] {
                    value.clone_into(v);
                }
            }
            None => {
                self.index.insert(key.to_string(), self.entries.len());
                self.entries
                    .push(Some((key.to_string(), value.to_string())));
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let i = *self.index.get(key)?;
        self.entries[i].as_ref().map(|(_, v)| v.as_str())
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(i) = self.index.remove(key) {
            self.entries[i] = None;
            // Compact once half the slots are dead: amortised constant time per removal.
            if self.index.len() * 2 < self.entries.len() {
                self.entries.retain(Option::is_some);
                for (i, (k, _)) in self.entries.iter().flatten().enumerate() {
                    if let Some(slot) = self.index.get_mut(k) {
                        *slot = i;
                    }
                }
            }
        }
    }

    /// The variables in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The variables as owned pairs, in declaration order.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl PartialEq for Vars {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Vars {}

impl Lookup for Vars {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_updates_in_place() {
        let mut v = Vars::from_pairs([("A".into(), "1".into()), ("B".into(), "2".into())]);
        v.set("A", "3");
        v.set("C", "4");
        assert_eq!(
            v.iter().collect::<Vec<_>>(),
            [("A", "3"), ("B", "2"), ("C", "4")]
        );
        assert_eq!(v.get("B"), Some("2"));
        assert_eq!(v.get("D"), None);
    }

    #[test]
    fn removal_compacts_and_keeps_lookups_right() {
        let mut v = Vars::default();
        for i in 0..100 {
            v.set(&format!("K{i}"), &i.to_string());
        }
        for i in (0..100).filter(|i| i % 3 != 0) {
            v.remove(&format!("K{i}"));
        }
        assert_eq!(v.len(), 34);
        for i in 0..100 {
            let want = (i % 3 == 0).then(|| i.to_string());
            assert_eq!(v.get(&format!("K{i}")), want.as_deref(), "K{i}");
        }
        v.set("K1", "back");
        assert_eq!(v.iter().last(), Some(("K1", "back")));
        assert_eq!(v.iter().next(), Some(("K0", "0")));
    }
}
