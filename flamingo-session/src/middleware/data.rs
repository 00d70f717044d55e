//! A request's session data: what it loaded, shared with the backend, and what it changed over
//! that, kept apart. A request that writes one key copies nothing of the others, and the change
//! it saves is the set of keys it changed.

use std::{collections::HashMap, sync::Arc};

use crate::backend::{IdHashing, SessionChange, SessionState};

/// The data one request sees: `changes` over `base`.
#[derive(Debug, Default)]
pub(crate) struct Data {
    /// What the request loaded ([`load_shared`](crate::backend::SessionBackend::load_shared)),
    /// never changed in place; `None` for a new, cleared or purged session.
    base: Option<Arc<SessionState>>,
    /// The keys the request wrote (`Some`) or removed (`None`). Hashed without a key, as a
    /// request's few keys are named by the app's code.
    changes: HashMap<String, Option<String>, IdHashing>,
}

impl Data {
    /// The data of a loaded session.
    pub(crate) fn loaded(base: Arc<SessionState>) -> Data {
        Data {
            base: Some(base),
            changes: HashMap::default(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        match self.changes.get(key) {
            Some(changed) => changed.as_deref(),
            None => self.base.as_ref()?.get(key).map(String::as_str),
        }
    }

    pub(crate) fn set(&mut self, key: &str, text: String) {
        // Overwriting a key again keeps its name: no allocation for it.
        match self.changes.get_mut(key) {
            Some(changed) => *changed = Some(text),
            None => {
                self.changes.insert(key.to_owned(), Some(text));
            }
        }
    }

    /// Removes `key`, and has the save remove it from the store whether this request saw it or
    /// not.
    pub(crate) fn remove(&mut self, key: &str) {
        match self.changes.get_mut(key) {
            Some(changed) => *changed = None,
            None => {
                self.changes.insert(key.to_owned(), None);
            }
        }
    }

    /// Forgets everything, loaded and changed.
    pub(crate) fn clear(&mut self) {
        self.base = None;
        self.changes.clear();
    }

    /// Whether the request changed any key.
    pub(crate) fn changed(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The keys the request wrote, with their values.
    pub(crate) fn written(&self) -> impl Iterator<Item = (&str, &str)> {
        self.changes
            .iter()
            .filter_map(|(key, value)| Some((key.as_str(), value.as_deref()?)))
    }

    /// Every key and value the request sees.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let base = self
            .base
            .iter()
            .flat_map(|base| base.iter())
            .filter(|(key, _)| !self.changes.contains_key(key.as_str()))
            .map(|(key, value)| (key.as_str(), value.as_str()));
        base.chain(self.written())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The whole data, taken out (the loaded part copied only if the backend still shares it).
    pub(crate) fn take(&mut self) -> SessionState {
        let mut state = self
            .base
            .take()
            .map(Arc::unwrap_or_clone)
            .unwrap_or_default();
        for (key, value) in self.changes.drain() {
            match value {
                Some(value) => state.insert(key, value),
                None => state.remove(&key),
            };
        }
        state
    }

    /// The changes, taken out as a merge, with `also` (keys read in save mode `OnRead`) saved as
    /// they are. The loaded part is let go as well, leaving the data empty: the backend can then
    /// merge into its copy in place instead of copying it because this request still holds it.
    pub(crate) fn take_merge(&mut self, also: impl IntoIterator<Item = String>) -> SessionChange {
        let mut set = SessionState::with_capacity(self.changes.len());
        let mut remove = Vec::new();
        for (key, value) in self.changes.drain() {
            match value {
                Some(value) => {
                    set.insert(key, value);
                }
                None => remove.push(key),
            }
        }
        for key in also {
            if set.contains_key(&key) || remove.contains(&key) {
                continue;
            }
            match self.base.as_ref().and_then(|base| base.get(&key)) {
                Some(value) => {
                    set.insert(key, value.clone());
                }
                None => remove.push(key),
            }
        }
        self.base = None;
        SessionChange::Merge { set, remove }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(pairs: &[(&str, &str)]) -> (Arc<SessionState>, Data) {
        let base: Arc<SessionState> = Arc::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        (base.clone(), Data::loaded(base))
    }

    #[test]
    fn changes_show_over_what_was_loaded_and_never_change_it() {
        // `base` is held here as a concurrent request would hold it.
        let (base, mut data) = loaded(&[("a", "1"), ("b", "2")]);
        data.set("a", "3".into());
        data.remove("b");
        data.set("c", "4".into());
        assert_eq!(data.get("a"), Some("3"));
        assert_eq!(data.get("b"), None);
        assert_eq!(data.get("c"), Some("4"));
        let mut seen: Vec<_> = data.iter().collect();
        seen.sort_unstable();
        assert_eq!(seen, [("a", "3"), ("c", "4")]);
        assert_eq!(base["a"], "1", "the shared copy is never written");
        assert_eq!(base.len(), 2);
        assert_eq!(
            data.take(),
            SessionState::from([("a".into(), "3".into()), ("c".into(), "4".into())])
        );
    }

    #[test]
    fn a_merge_holds_the_changed_keys_and_the_read_ones() {
        let (_, mut data) = loaded(&[("a", "1"), ("b", "2"), ("r", "5")]);
        data.set("a", "3".into());
        data.remove("b");
        data.remove("never-there");
        let change = data.take_merge(["r".to_owned(), "a".to_owned(), "gone".to_owned()]);
        let SessionChange::Merge { set, mut remove } = change else {
            panic!("a merge")
        };
        remove.sort_unstable();
        assert_eq!(
            set,
            SessionState::from([("a".into(), "3".into()), ("r".into(), "5".into())])
        );
        assert_eq!(remove, ["b", "gone", "never-there"]);
        assert!(data.is_empty(), "the loaded part is let go");
    }

    #[test]
    fn emptiness_counts_what_the_request_sees() {
        let (_, mut data) = loaded(&[("a", "1")]);
        assert!(!data.is_empty());
        data.remove("a");
        assert!(data.is_empty());
        data.set("b", "2".into());
        assert!(!data.is_empty());
        data.clear();
        assert!(data.is_empty() && !data.changed());
        assert!(Data::default().is_empty());
    }
}
