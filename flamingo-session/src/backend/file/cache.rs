//! What a process remembers of the session files it read or wrote, each with the version its
//! slot of the shared table had then (see [`table`](super::table)): while the slot's version is
//! the same, the file is too, so a load needs no system call and a write needs no read.

use std::{
    collections::HashMap,
    fs::File,
    sync::{Arc, Mutex},
};

use crate::backend::{encoded_len, IdHashing, SessionId, SessionState};

/// At most this many sessions are remembered.
const MAX_ENTRIES: usize = 4096;
/// At most this many bytes of keys and values are remembered in all.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// At most this many session files are kept open for appending.
const MAX_FILES: usize = 64;

/// A session file's content, as read or written.
#[derive(Clone)]
pub(super) struct Stored {
    /// Unix milliseconds.
    pub(super) expires: u64,
    /// Shared with the requests that loaded it: a write builds a new state.
    pub(super) state: Arc<SessionState>,
    /// The file's length in bytes, as far as this process knows (it decides when a file is
    /// rewritten instead of appended to).
    pub(super) len: u64,
    /// The file, open for appending, when this process appended to it last: valid while the
    /// slot's version is unchanged, since every rename or removal of the file bumps it.
    pub(super) file: Option<Arc<File>>,
}

struct Entry {
    version: u64,
    stored: Stored,
    bytes: usize,
}

/// The remembered sessions, bounded in count and in bytes.
#[derive(Default)]
pub(super) struct Cache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<SessionId, Entry, IdHashing>,
    bytes: usize,
    /// Entries holding an open file.
    files: usize,
}

impl Cache {
    /// A copy of the session, if it is remembered as of slot version `version`.
    pub(super) fn get(&self, id: &SessionId, version: u64) -> Option<Stored> {
        let inner = self.lock();
        let entry = inner.entries.get(id)?;
        (entry.version == version).then(|| entry.stored.clone())
    }

    /// Takes the session out, if it is remembered as of slot version `version` (for a write,
    /// which puts the result back).
    pub(super) fn take(&self, id: &SessionId, version: u64) -> Option<Stored> {
        let mut inner = self.lock();
        let entry = inner.remove(id)?;
        (entry.version == version).then_some(entry.stored)
    }

    /// Remembers the session as of slot version `version`.
    pub(super) fn put(&self, id: &SessionId, version: u64, mut stored: Stored) {
        let bytes = encoded_len(&stored.state) + id.expose().len();
        let mut inner = self.lock();
        inner.remove(id);
        if bytes > MAX_BYTES / 16 {
            return;
        }
        while inner.entries.len() >= MAX_ENTRIES || inner.bytes + bytes > MAX_BYTES {
            let Some(victim) = inner.entries.keys().next().cloned() else {
                break;
            };
            inner.remove(&victim);
        }
        if stored.file.is_some() {
            if inner.files < MAX_FILES {
                inner.files += 1;
            } else {
                stored.file = None;
            }
        }
        inner.bytes += bytes;
        inner.entries.insert(
            id.clone(),
            Entry {
                version,
                stored,
                bytes,
            },
        );
    }

    /// Forgets the session.
    pub(super) fn forget(&self, id: &SessionId) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while the lock was held leaves at worst a missing entry: keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn remove(&mut self, id: &SessionId) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.bytes -= entry.bytes;
        if entry.stored.file.is_some() {
            self.files -= 1;
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(value: &str) -> Stored {
        Stored {
            expires: 1,
            state: Arc::new(SessionState::from([("k".to_owned(), value.to_owned())])),
            len: 10,
            file: None,
        }
    }

    #[test]
    fn an_entry_answers_only_for_its_version() {
        let cache = Cache::default();
        let id = SessionId::generate();
        cache.put(&id, 7, stored("a"));
        assert_eq!(
            cache.get(&id, 7).map(|s| s.state["k"].clone()),
            Some("a".into())
        );
        assert!(
            cache.get(&id, 8).is_none(),
            "a newer slot version means a changed file"
        );
        assert!(cache.take(&id, 8).is_none());
        assert!(
            cache.get(&id, 7).is_none(),
            "take removes the entry even on a miss"
        );
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = Cache::default();
        for _ in 0..MAX_ENTRIES + 100 {
            cache.put(&SessionId::generate(), 1, stored("v"));
        }
        let inner = cache.lock();
        assert_eq!(inner.entries.len(), MAX_ENTRIES);
        assert_eq!(
            inner.bytes,
            inner.entries.values().map(|e| e.bytes).sum::<usize>()
        );
        drop(inner);
        drop(cache);

        let cache = Cache::default();
        let file = Arc::new(tempfile::tempfile().unwrap());
        for _ in 0..MAX_FILES + 10 {
            let mut with_file = stored("v");
            with_file.file = Some(Arc::clone(&file));
            cache.put(&SessionId::generate(), 1, with_file);
        }
        let kept = cache.lock().files;
        assert_eq!(kept, MAX_FILES, "open files are bounded");
        assert_eq!(Arc::strong_count(&file), MAX_FILES + 1);
        let big = "x".repeat(MAX_BYTES / 8);
        let id = SessionId::generate();
        cache.put(&id, 1, stored(&big));
        assert!(
            cache.get(&id, 1).is_none(),
            "a huge session is not remembered"
        );
    }
}
