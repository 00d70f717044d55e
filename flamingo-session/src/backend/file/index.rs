//! The file backend's owner indexes and leases (see the parent module's guarantees).

use std::{
    collections::BTreeMap,
    fs, io,
    path::PathBuf,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tracing::Instrument as _;

use super::{
    expiry, now_ms, read_header_expiry, run_blocking, FileBackend, FileId, Folder, Record,
    WriteMode,
};
use crate::backend::{
    check_length, index::lease_key, unix_now, BackendError, IndexedSession, Leases, SessionId,
    SessionIndex, SessionOwner, SessionState,
};

const INDEX_PREFIX: &str = ".owner-";
const LEASE_PREFIX: &str = ".lease-";
const JSON_SUFFIX: &str = ".json";
/// Index and lease lock files are `.ilock-00` to `.ilock-ff`, apart from the sessions' own.
const INDEX_LOCK_PREFIX: &str = ".ilock-";

/// An owner's index file: session ID → creation time (Unix seconds).
#[derive(Default, Serialize, Deserialize)]
struct IndexFile {
    v: u32,
    sessions: BTreeMap<String, u64>,
}

/// A lease file.
#[derive(Serialize, Deserialize)]
struct LeaseFile {
    holder: String,
    /// Unix milliseconds.
    expires: u64,
}

/// The lock shard of an owner key or a lease key (both base64url SHA-256).
fn shard_of(key: &str) -> u8 {
    sha2::Sha256::digest(key.as_bytes())[0]
}

impl Folder {
    fn index_path(&self, owner_key: &str) -> PathBuf {
        self.dir
            .join(format!("{INDEX_PREFIX}{owner_key}{JSON_SUFFIX}"))
    }

    fn index_lock(&self, key: &str) -> Result<fs::File, BackendError> {
        self.lock_file(&format!("{INDEX_LOCK_PREFIX}{:02x}", shard_of(key)))
    }

    /// Reads an owner's index (empty when there is none). Call under its lock.
    fn read_index(&self, owner_key: &str) -> Result<IndexFile, BackendError> {
        match super::read_whole(&self.index_path(owner_key)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
                BackendError::Corrupt(format!("an owner's session index is not valid: {err}"))
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(IndexFile::default()),
            Err(err) => Err(self.error("read an owner's session index", err)),
        }
    }

    /// Writes an owner's index, or removes it when it holds no session. Call under its lock.
    fn write_index(&self, owner_key: &str, index: &IndexFile) -> Result<(), BackendError> {
        let path = self.index_path(owner_key);
        if index.sessions.is_empty() {
            return fs::remove_file(&path)
                .or_else(super::not_found_ok)
                .map_err(|err| self.error("remove an owner's session index", err));
        }
        let bytes = serde_json::to_vec(&IndexFile {
            v: 1,
            sessions: index.sessions.clone(),
        })
        .map_err(|err| BackendError::other(format!("cannot encode a session index: {err}")))?;
        self.write_path(&path, &bytes, WriteMode::Overwrite)?;
        Ok(())
    }

    /// When the session was last written, if it is live: its file's modification time.
    fn last_seen(&self, id: &FileId) -> Result<Option<u64>, BackendError> {
        let path = self.session_path(id);
        match read_header_expiry(self, &path)? {
            Some(expires) if expires > now_ms() => {}
            _ => return Ok(None),
        }
        let modified = fs::metadata(&path)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_secs());
        Ok(Some(modified))
    }

    /// Lists an owner's live sessions and drops the dead ones from its index.
    fn list(&self, owner_key: &str) -> Result<Vec<IndexedSession>, BackendError> {
        let _lock = self.index_lock(owner_key)?;
        let mut index = self.read_index(owner_key)?;
        let mut live = Vec::with_capacity(index.sessions.len());
        let mut dead = Vec::new();
        for (id, created) in &index.sessions {
            let Ok(parsed) = SessionId::parse(id) else {
                dead.push(id.clone());
                continue;
            };
            match self.last_seen(&FileId::new(&parsed))? {
                Some(last_seen) => live.push(IndexedSession {
                    id: parsed,
                    created: *created,
                    last_seen,
                }),
                None => dead.push(id.clone()),
            }
        }
        if !dead.is_empty() {
            for id in &dead {
                index.sessions.remove(id);
            }
            self.write_index(owner_key, &index)?;
        }
        live.sort_by_key(|session| session.created);
        Ok(live)
    }

    /// Drops the dead sessions of the index file `name` (during the cleanup); removes it when
    /// none is left.
    fn prune_index(&self, owner_key: &str) -> Result<(), BackendError> {
        self.list(owner_key).map(drop)
    }

    /// Removes a lease file whose time ran out (during the cleanup).
    fn prune_lease(&self, key: &str) -> Result<(), BackendError> {
        let _lock = self.index_lock(key)?;
        if self
            .read_lease(key)?
            .is_some_and(|lease| lease.expires <= now_ms())
        {
            fs::remove_file(self.lease_path(key))
                .or_else(super::not_found_ok)
                .map_err(|err| self.error("remove a lease", err))?;
        }
        Ok(())
    }

    fn lease_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{LEASE_PREFIX}{key}{JSON_SUFFIX}"))
    }

    /// Reads a lease; `None` when there is none. Call under its lock.
    fn read_lease(&self, key: &str) -> Result<Option<LeaseFile>, BackendError> {
        match super::read_whole(&self.lease_path(key)) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.error("read a lease", err)),
        }
    }

    fn write_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<(), BackendError> {
        let bytes = serde_json::to_vec(&LeaseFile {
            holder: holder.to_owned(),
            expires: expiry(ttl),
        })
        .map_err(|err| BackendError::other(format!("cannot encode a lease: {err}")))?;
        self.write_path(&self.lease_path(key), &bytes, WriteMode::Overwrite)?;
        Ok(())
    }
}

/// For the cleanup: `Some` when `name` is an index or lease file (and it was pruned), `None`
/// for any other file.
pub(super) fn sweep_entry(folder: &Folder, name: &str) -> Option<Result<(), BackendError>> {
    if name.starts_with(INDEX_LOCK_PREFIX) {
        return Some(Ok(()));
    }
    if let Some(key) = name
        .strip_prefix(INDEX_PREFIX)
        .and_then(|rest| rest.strip_suffix(JSON_SUFFIX))
    {
        return Some(folder.prune_index(key));
    }
    if let Some(key) = name
        .strip_prefix(LEASE_PREFIX)
        .and_then(|rest| rest.strip_suffix(JSON_SUFFIX))
    {
        return Some(folder.prune_lease(key));
    }
    None
}

impl FileBackend {
    async fn blocking<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&Folder) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let folder = Arc::clone(&self.inner.folder);
        let span = tracing::debug_span!("flamingo_session.file", operation);
        run_blocking(move || work(&folder)).instrument(span).await
    }
}

#[async_trait]
impl SessionIndex for FileBackend {
    async fn create_owned(
        &self,
        owner: &SessionOwner,
        state: SessionState,
        ttl: Duration,
    ) -> Result<SessionId, BackendError> {
        check_length(&state, self.inner.store_length)?;
        let owner = owner.clone();
        let expires = expiry(ttl);
        self.blocking("create_owned", move |folder| {
            let record = Record::encode(expires, &state)?;
            let state = Arc::new(state);
            let key = owner.key();
            let _lock = folder.index_lock(key)?;
            let mut index = folder.read_index(key)?;
            for _ in 0..super::CREATE_ATTEMPTS {
                let id = FileId::new(&SessionId::generate_for(&owner));
                if folder.create_session(&id, &record, &state, expires)? {
                    index
                        .sessions
                        .insert(id.key.expose().to_owned(), unix_now());
                    if let Err(err) = folder.write_index(key, &index) {
                        // Not indexed means not endable: do not leave it behind.
                        let _ = folder.end_session(&id);
                        return Err(err);
                    }
                    return Ok(id.key);
                }
            }
            Err(BackendError::other(
                "no free session ID found in the session folder",
            ))
        })
        .await
    }

    async fn list(&self, owner: &SessionOwner) -> Result<Vec<IndexedSession>, BackendError> {
        let key = owner.key().to_owned();
        self.blocking("list sessions", move |folder| folder.list(&key))
            .await
    }

    async fn end(&self, owner: &SessionOwner, id: &SessionId) -> Result<bool, BackendError> {
        let key = owner.key().to_owned();
        let id = id.clone();
        self.blocking("end session", move |folder| {
            let _lock = folder.index_lock(&key)?;
            let mut index = folder.read_index(&key)?;
            if index.sessions.remove(id.expose()).is_none() {
                return Ok(false);
            }
            let live = folder.end_session(&FileId::new(&id))?;
            folder.write_index(&key, &index)?;
            Ok(live)
        })
        .await
    }

    async fn end_all(&self, owner: &SessionOwner) -> Result<usize, BackendError> {
        let key = owner.key().to_owned();
        self.blocking("end sessions", move |folder| {
            let _lock = folder.index_lock(&key)?;
            let mut index = folder.read_index(&key)?;
            let mut ended = 0;
            while let Some((id, _)) = index.sessions.pop_first() {
                if let Ok(id) = SessionId::parse(&id) {
                    if folder.end_session(&FileId::new(&id))? {
                        ended += 1;
                    }
                }
            }
            folder.write_index(&key, &index)?;
            Ok(ended)
        })
        .await
    }
}

#[async_trait]
impl Leases for FileBackend {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BackendError> {
        let (key, holder) = (lease_key(name), holder.to_owned());
        self.blocking("acquire lease", move |folder| {
            let _lock = folder.index_lock(&key)?;
            let taken = folder
                .read_lease(&key)?
                .is_some_and(|lease| lease.expires > now_ms() && lease.holder != holder);
            if taken {
                return Ok(false);
            }
            folder.write_lease(&key, &holder, ttl)?;
            Ok(true)
        })
        .await
    }

    async fn renew(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BackendError> {
        let (key, holder) = (lease_key(name), holder.to_owned());
        self.blocking("renew lease", move |folder| {
            let _lock = folder.index_lock(&key)?;
            let held = folder
                .read_lease(&key)?
                .is_some_and(|lease| lease.expires > now_ms() && lease.holder == holder);
            if held {
                folder.write_lease(&key, &holder, ttl)?;
            }
            Ok(held)
        })
        .await
    }

    async fn holder(&self, name: &str) -> Result<Option<String>, BackendError> {
        let key = lease_key(name);
        self.blocking("read lease", move |folder| {
            let _lock = folder.index_lock(&key)?;
            Ok(folder
                .read_lease(&key)?
                .filter(|lease| lease.expires > now_ms())
                .map(|lease| lease.holder))
        })
        .await
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), BackendError> {
        let (key, holder) = (lease_key(name), holder.to_owned());
        self.blocking("release lease", move |folder| {
            let _lock = folder.index_lock(&key)?;
            if folder
                .read_lease(&key)?
                .is_some_and(|lease| lease.holder == holder)
            {
                fs::remove_file(folder.lease_path(&key))
                    .or_else(super::not_found_ok)
                    .map_err(|err| folder.error("remove a lease", err))?;
            }
            Ok(())
        })
        .await
    }
}
