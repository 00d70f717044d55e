//! The file backend: one file per session in a folder (`flamingo.session.backend: file`).
//!
//! Each session lives in `session_<id>.json` inside the folder `flamingo.session.file`
//! (Flamingo's default: `/sessions`). The file is a list of records, one JSON object per line,
//! each holding an expiry time and the session's values. The last complete line is the session:
//!
//! ```json
//! {"v":2,"expires":1767225600000,"state":{"user":{"t":"app::User","v":{"name":"Ada"}}}}
//! {"v":2,"expires":1767229200000,"state":{"user":{"t":"app::User","v":{"name":"Ada"}},"n":{"t":"u64","v":1}}}
//! ```
//!
//! `expires` is a Unix time in milliseconds; each value is the stored JSON text embedded as JSON
//! (not a string holding escaped JSON), so a file is easy to read by a person. A write appends one
//! line; once a file grows past four times its newest record plus 8 KiB, the next write replaces it
//! with a file holding only that record. Files of format version 1 (one object, no line break) are
//! still read.
//!
//! # Guarantees
//!
//! - **No torn session.** A new session and a rewritten file go to a temporary file in the same
//!   folder, are flushed to disk and renamed over the session file. An appended record starts with
//!   a line break and is only the session once its closing line break is written; a record cut
//!   short by a crash or `kill -9` is skipped when the file is read, and the next write lands on a
//!   line of its own. Temporary files left by a crash are removed by the cleanup task once they are
//!   a minute old.
//! - **No path escapes.** A file is named by a [`SessionId`], whose characters are
//!   `[A-Za-z0-9_-]` only, so no ID can name a path outside the folder.
//! - **A dead session stays dead.** A save or touch of a session whose file is gone or expired
//!   writes nothing and answers [`SaveOutcome::Gone`], under the same locks as every write.
//! - **Atomic merges, also across processes on one machine.** The folder holds a table shared by
//!   every process that uses it (`.table-v2`, mapped into each one's memory): for each of 65,536
//!   slots a lock and a version. A session's writes and removal happen under its slot's lock and
//!   bump the slot's version. A [`SessionChange::Merge`] applies the change to the stored session
//!   under that lock, so no key is lost to a concurrent writer in any process. A process that is
//!   killed while holding a slot's lock loses it after 200 ms: each process holds an advisory file
//!   lock on its own `.holder-<token>` file, and a waiter that finds that file unlocked takes the
//!   slot over. Shared memory is not shared between machines: several machines need the Redis
//!   backend, not a network folder.
//! - **Reads from memory while nothing changed.** Each process remembers the sessions it last
//!   read or wrote (up to 4,096 sessions and 32 MiB) with their slot's version, and keeps up to
//!   64 of their files open for appending. While the version is unchanged, a load is answered from
//!   memory without a system call and a write appends without reading the file first; any change
//!   by any process makes the next load read the file again. Removing or editing session files by
//!   hand while processes use the folder is not seen by them.
//! - **Never waits for a device on the runtime.** In a folder on a disk or a network file system
//!   every operation that does file I/O runs it in one
//!   [`spawn_blocking`](tokio::task::spawn_blocking) task. In a folder held in memory (tmpfs or
//!   ramfs, such as `/dev/shm`), where no system call waits for a device, a session's load,
//!   create, save, touch and delete run their few system calls on the worker thread instead: that
//!   is cheaper than the hand-off to the blocking pool and back (BENCHMARKS.md). The cleanup, the
//!   health check and the owner index always run on the blocking pool.
//! - **Expired files are removed**: lazily when loaded, and by a background task every
//!   `flamingo.session.fileCleanupInterval` (Flamingo never removes them).
//! - **An owner's index** ([`SessionIndex`]) is one file, `.owner-<owner key>.json`, mapping
//!   each session ID to its creation time; it is read and written under one of 256 lock files
//!   (`.ilock-00` to `.ilock-ff`), taken before a session's slot lock, so that ending all of an
//!   owner's sessions and creating one never miss each other. A session's last use is its file's
//!   modification time. Leases are `.lease-<hash>.json` files under the same locks.
//!
//! Files are created with mode `0600` and a folder this backend creates gets mode `0700` (on
//! Unix).

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    fs::{self, File},
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::Instrument as _;

use crate::backend::{
    check_length, BackendError, HealthStatus, Leases, SaveOutcome, SessionBackend, SessionChange,
    SessionId, SessionIndex, SessionState,
};

mod cache;
mod index;
mod table;

use cache::{Cache, Stored};
use table::{SlotLock, Table};

/// The format version written into every record (`"v"`). Version 1 files hold one record and no
/// line break; they are still read.
const FORMAT_VERSION: u32 = 2;
/// A file is rewritten with only its newest record, instead of appended to, once appending would
/// make it longer than this many bytes beyond four times the record.
const APPEND_SLACK: u64 = 8 * 1024;
/// Session files are `session_<key>.json`.
const FILE_PREFIX: &str = "session_";
const FILE_SUFFIX: &str = ".json";
/// Temporary files (writes in progress, health probes) start with this.
const TMP_PREFIX: &str = ".tmp-";
/// How many in-process lock shards there are.
const LOCK_SHARDS: usize = 256;
/// Temporary files older than this are left over from a crash and are removed by the cleanup.
const STALE_TMP_AGE: Duration = Duration::from_secs(60);
/// The first buffer for reading a file: most sessions fit.
const READ_CAPACITY: usize = 8 * 1024;
/// How often `create` tries a fresh key before giving up (a collision of 256-bit keys does not
/// happen in practice).
const CREATE_ATTEMPTS: usize = 8;

/// Settings of a [`FileBackend`] opened with [`FileBackend::open`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flamingo_session::file::FileOptions;
///
/// let options = FileOptions { store_length: 4096, ..FileOptions::default() };
/// assert_eq!(options.cleanup_interval, Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOptions {
    /// The largest encoded session in bytes (`flamingo.session.store.length`); `0` means no
    /// limit. Default: `1048576`.
    pub store_length: usize,
    /// How often the background task removes expired session files
    /// (`flamingo.session.fileCleanupInterval`); [`Duration::ZERO`] turns the task off (call
    /// [`FileBackend::remove_expired`] yourself then). Default: 5 minutes.
    pub cleanup_interval: Duration,
    /// Flush every written session to disk (`fsync`) before it replaces the old file
    /// (`flamingo.session.fileSync`). A crash of the process (even `kill -9`) never leaves a torn
    /// file either way, since the rename is atomic; `fsync` adds the same guarantee for a power
    /// loss or a kernel crash, at the price of one disk flush per write (on an ordinary disk
    /// that bounds throughput to some hundreds of writes per second; see BENCHMARKS.md).
    /// Default: `true`.
    pub sync: bool,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            store_length: 1_048_576,
            cleanup_interval: Duration::from_secs(300),
            sync: true,
        }
    }
}

/// The file session backend: one file per session in a folder, shared safely by several
/// processes. See the [module documentation](self) for the file format and the guarantees.
///
/// Cloning is cheap and shares the backend. The background cleanup task stops when the last
/// clone is dropped.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flamingo_session::backend::{SessionBackend, SessionState};
/// use flamingo_session::file::{FileBackend, FileOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let folder = tempfile::tempdir()?;
/// let backend = FileBackend::open(folder.path().join("sessions"), FileOptions::default()).await?;
///
/// let state = SessionState::from([("visits".to_owned(), "1".to_owned())]);
/// let key = backend.create(state.clone(), Duration::from_secs(60)).await?;
/// assert_eq!(backend.load(&key).await?, Some(state));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FileBackend {
    inner: Arc<Inner>,
}

struct Inner {
    folder: Arc<Folder>,
    store_length: usize,
    /// In-process lock shards: concurrent writers of one session in this process wait here, on
    /// the runtime, instead of at the slot lock of the shared table.
    locks: Box<[tokio::sync::Mutex<()>]>,
    cleanup: Option<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup.abort();
        }
    }
}

impl fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBackend")
            .field("folder", &self.inner.folder.dir)
            .field("in_memory", &self.inner.folder.in_memory)
            .field("store_length", &self.inner.store_length)
            .field("cleanup", &self.inner.cleanup.is_some())
            .finish()
    }
}

impl FileBackend {
    /// Opens (and creates, with mode `0700`, if missing) the session folder `dir`. An existing
    /// folder is used as it is. The cleanup task starts when this runs inside a Tokio runtime
    /// and `options.cleanup_interval` is not zero.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the folder cannot be created or is not a folder.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flamingo_session::file::{FileBackend, FileOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let folder = tempfile::tempdir()?;
    /// let options = FileOptions { store_length: 0, cleanup_interval: Duration::from_secs(60), sync: true };
    /// let backend = FileBackend::open(folder.path(), options).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(dir: impl AsRef<Path>, options: FileOptions) -> Result<Self, BackendError> {
        let dir = dir.as_ref().to_path_buf();
        let sync = options.sync;
        let folder = run_blocking(move || Folder::create(dir, sync)).await?;
        let folder = Arc::new(folder);
        let cleanup = start_cleanup(&folder, options.cleanup_interval);
        let locks = (0..LOCK_SHARDS)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect();
        Ok(FileBackend {
            inner: Arc::new(Inner {
                folder,
                store_length: options.store_length,
                locks,
                cleanup,
            }),
        })
    }

    /// The session folder (made absolute when the backend was opened).
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::file::{FileBackend, FileOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let folder = tempfile::tempdir()?;
    /// let backend = FileBackend::open(folder.path(), FileOptions::default()).await?;
    /// assert!(backend.dir().is_absolute());
    /// # Ok(())
    /// # }
    /// ```
    pub fn dir(&self) -> &Path {
        &self.inner.folder.dir
    }

    /// Removes every expired session file now (the cleanup task does this every
    /// `cleanup_interval`), and temporary files a crash left behind that are older than a
    /// minute. Returns how many session files were removed.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the folder cannot be listed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::file::{FileBackend, FileOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let folder = tempfile::tempdir()?;
    /// let backend = FileBackend::open(folder.path(), FileOptions::default()).await?;
    /// assert_eq!(backend.remove_expired().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remove_expired(&self) -> Result<usize, BackendError> {
        let folder = Arc::clone(&self.inner.folder);
        let span = tracing::debug_span!("flamingo_session.file.remove_expired");
        let report = run_blocking(move || folder.sweep())
            .instrument(span)
            .await?;
        Ok(report.sessions)
    }

    /// Runs the blocking `work` of one session operation: on the worker thread when the folder
    /// is in memory (see [`Folder::in_memory`]), on Tokio's blocking pool otherwise.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Folder) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        if self.inner.folder.in_memory {
            work(&self.inner.folder)
        } else {
            let folder = Arc::clone(&self.inner.folder);
            run_blocking(move || work(&folder)).await
        }
    }

    /// Runs the blocking `work` on session `id` under its shard's in-process lock (the file lock
    /// is taken inside `work`), in a span naming the operation and the session's hash.
    async fn locked<T: Send + 'static>(
        &self,
        operation: &'static str,
        id: &SessionId,
        work: impl FnOnce(&Folder, &FileId) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let id = FileId::new(id);
        let span = tracing::debug_span!("flamingo_session.file", operation, session = %id.hash);
        let _guard = self
            .lock_shard(id.shard)
            .lock()
            .instrument(span.clone())
            .await;
        self.run(move |folder| work(folder, &id))
            .instrument(span)
            .await
    }

    fn lock_shard(&self, shard: u8) -> &tokio::sync::Mutex<()> {
        &self.inner.locks[usize::from(shard)]
    }
}

#[async_trait]
impl SessionBackend for FileBackend {
    fn name(&self) -> &str {
        "file"
    }

    async fn load(&self, id: &SessionId) -> Result<Option<SessionState>, BackendError> {
        Ok(self.load_shared(id).await?.map(Arc::unwrap_or_clone))
    }

    async fn load_shared(&self, id: &SessionId) -> Result<Option<Arc<SessionState>>, BackendError> {
        let id = FileId::new(id);
        if let Some(state) = self.inner.folder.cached(&id) {
            return Ok(Some(state));
        }
        let span = tracing::debug_span!("flamingo_session.file.load", session = %id.hash);
        self.run(move |folder| folder.load(&id))
            .instrument(span)
            .await
    }

    async fn create(&self, state: SessionState, ttl: Duration) -> Result<SessionId, BackendError> {
        let span = tracing::debug_span!(
            "flamingo_session.file.create",
            session = tracing::field::Empty
        );
        check_length(&state, self.inner.store_length)?;
        let expires = expiry(ttl);
        let task_span = span.clone();
        self.run(move |folder| {
            let record = Record::encode(expires, &state)?;
            let state = Arc::new(state);
            for _ in 0..CREATE_ATTEMPTS {
                let id = FileId::new(&SessionId::generate());
                task_span.record("session", tracing::field::display(&id.hash));
                if folder.create_session(&id, &record, &state, expires)? {
                    return Ok(id.key);
                }
                tracing::debug!("session ID collision; trying another ID");
            }
            Err(BackendError::other(format!(
                "no free session ID found in {CREATE_ATTEMPTS} attempts in the session folder"
            )))
        })
        .instrument(span)
        .await
    }

    async fn save(
        &self,
        id: &SessionId,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<SaveOutcome, BackendError> {
        let (limit, expires) = (self.inner.store_length, expiry(ttl));
        self.locked("save", id, move |folder, id| {
            folder.save(id, change, limit, expires)
        })
        .await
    }

    async fn touch(&self, id: &SessionId, ttl: Duration) -> Result<SaveOutcome, BackendError> {
        let expires = expiry(ttl);
        self.locked("touch", id, move |folder, id| folder.touch(id, expires))
            .await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), BackendError> {
        self.locked("delete", id, |folder, id| folder.delete(id))
            .await
    }

    async fn health(&self) -> HealthStatus {
        let folder = Arc::clone(&self.inner.folder);
        let span = tracing::debug_span!("flamingo_session.file.health");
        match run_blocking(move || Ok(folder.health()))
            .instrument(span)
            .await
        {
            Ok(status) => status,
            Err(err) => HealthStatus::down(err.to_string()),
        }
    }

    fn can_hold_tokens(&self) -> bool {
        true
    }

    fn index(&self) -> Option<&dyn SessionIndex> {
        Some(self)
    }

    fn leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }
}

/// A session's ID with what the backend derives from it.
struct FileId {
    key: SessionId,
    /// `key.hash()`: what logs show.
    hash: String,
    /// Which in-process lock shard guards this session: the slot's first byte.
    shard: u8,
    /// Which slot of the shared table guards this session: the first 16 bits of the SHA-256,
    /// the same in every process that shares the folder.
    slot: u16,
}

impl FileId {
    fn new(key: &SessionId) -> Self {
        let hash = key.hash();
        let slot = u16::from_str_radix(&hash[..4], 16).unwrap_or(0);
        FileId {
            key: key.clone(),
            hash,
            shard: slot.to_be_bytes()[0],
            slot,
        }
    }
}

/// How a write treats an existing session file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    /// Replace it.
    Overwrite,
    /// Leave it and report `false`.
    NoClobber,
}

/// An I/O failure in the session folder; it names the folder, never a session file.
#[derive(Debug, thiserror::Error)]
#[error("flamingo.session.file: cannot {action} in session folder {}: {source}", folder.display())]
struct FolderError {
    action: &'static str,
    folder: PathBuf,
    #[source]
    source: io::Error,
}

/// The session folder and the blocking operations on it. Every method here may block, except
/// [`cached`](Self::cached).
struct Folder {
    dir: PathBuf,
    /// `fsync` each write before it is reported.
    sync: bool,
    /// The folder is on a file system held in memory (tmpfs or ramfs, on Linux), where no
    /// operation waits for a device: a session's load or write is a few system calls of some
    /// microseconds each, cheaper than handing it to Tokio's blocking pool and back (measured in
    /// BENCHMARKS.md), so it runs on the worker thread. Elsewhere (a disk, a network file system)
    /// an operation can wait for the device and runs on the blocking pool.
    in_memory: bool,
    /// The locks and versions shared with every process that uses the folder.
    table: Table,
    /// The sessions this process read or wrote, valid while their slot's version is unchanged.
    cache: Cache,
}

impl Folder {
    /// Creates the folder (mode 0700) unless it exists, makes its path absolute and opens its
    /// shared table.
    fn create(dir: PathBuf, sync: bool) -> Result<Folder, BackendError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        let unavailable = |action, folder: &Path, source| {
            BackendError::Unavailable(Box::new(FolderError {
                action,
                folder: folder.to_path_buf(),
                source,
            }))
        };
        builder
            .create(&dir)
            .map_err(|err| unavailable("create the folder", &dir, err))?;
        let dir =
            fs::canonicalize(&dir).map_err(|err| unavailable("resolve the path", &dir, err))?;
        if !dir.is_dir() {
            return Err(unavailable(
                "use the path",
                &dir,
                io::Error::other("not a folder"),
            ));
        }
        let table = Table::open(&dir)
            .map_err(|err| unavailable("open the shared lock table", &dir, err))?;
        let in_memory = in_memory(&dir);
        tracing::debug!(
            folder = %dir.display(),
            in_memory,
            "session folder opened; file I/O runs {}",
            if in_memory { "on the worker thread" } else { "on the blocking pool" }
        );
        Ok(Folder {
            dir,
            sync,
            in_memory,
            table,
            cache: Cache::default(),
        })
    }

    fn error(&self, action: &'static str, source: io::Error) -> BackendError {
        BackendError::Unavailable(Box::new(FolderError {
            action,
            folder: self.dir.clone(),
            source,
        }))
    }

    /// The path of a session's file, checked to lie directly in the folder.
    fn session_path(&self, id: &FileId) -> PathBuf {
        self.dir
            .join(format!("{FILE_PREFIX}{}{FILE_SUFFIX}", id.key.expose()))
    }

    /// Takes the advisory lock on the lock file `name` of the folder (created if missing).
    fn lock_file(&self, name: &str) -> Result<File, BackendError> {
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(self.dir.join(name))
            .map_err(|err| self.error("open a lock file", err))?;
        fs4::FileExt::lock(&file).map_err(|err| self.error("lock a lock file", err))?;
        Ok(file)
    }

    /// The live session as remembered, when its slot has not changed since: no system call.
    /// `None` when it is not remembered, changed or expired.
    fn cached(&self, id: &FileId) -> Option<Arc<SessionState>> {
        let stored = self.cache.get(&id.key, self.table.version(id.slot))?;
        (stored.expires > now_ms()).then_some(stored.state)
    }

    /// Reads and decodes a session file: `None` when there is none.
    fn read(&self, path: &Path) -> Result<Option<Stored>, BackendError> {
        match read_whole(path) {
            Ok(bytes) => {
                let (expires, state) = decode(&bytes)?;
                let len = bytes.len() as u64;
                Ok(Some(Stored {
                    expires,
                    state: Arc::new(state),
                    len,
                    file: None,
                }))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.error("read a session file", err)),
        }
    }

    /// The stored session (live or expired) under its slot's lock: the remembered one when the
    /// slot has not changed since, the file's otherwise. It is no longer remembered afterwards;
    /// a write puts its result back.
    fn stored(&self, id: &FileId, slot: &SlotLock<'_>) -> Result<Option<Stored>, BackendError> {
        match self.cache.take(&id.key, slot.version()) {
            Some(stored) => Ok(Some(stored)),
            None => self.read(&self.session_path(id)),
        }
    }

    /// Writes a session file atomically: a temporary file in the folder, flushed to disk, then
    /// renamed over the target. With [`WriteMode::NoClobber`], returns `false` (and writes nothing)
    /// when the target exists.
    fn write(&self, id: &FileId, bytes: &[u8], mode: WriteMode) -> Result<bool, BackendError> {
        self.write_path(&self.session_path(id), bytes, mode)
    }

    /// Writes any file of the folder atomically, as [`write`](Self::write) does.
    fn write_path(&self, path: &Path, bytes: &[u8], mode: WriteMode) -> Result<bool, BackendError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(TMP_PREFIX);
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
        let mut tmp = builder
            .tempfile_in(&self.dir)
            .map_err(|err| self.error("create a temporary file", err))?;
        tmp.write_all(bytes)
            .map_err(|err| self.error("write a temporary file", err))?;
        if self.sync {
            tmp.as_file()
                .sync_all()
                .map_err(|err| self.error("flush a temporary file", err))?;
        }
        match mode {
            WriteMode::Overwrite => {
                tmp.persist(path)
                    .map_err(|err| self.error("replace a session file", err.error))?;
                Ok(true)
            }
            WriteMode::NoClobber => match tmp.persist_noclobber(path) {
                Ok(_) => Ok(true),
                // The temporary file is removed when `err.file` drops.
                Err(err) if err.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(err) => Err(self.error("create a session file", err.error)),
            },
        }
    }

    /// Writes the session's new record under its slot's lock, bumps the slot's version and
    /// remembers the result. The record is appended to the file (one `write`), unless the file
    /// would grow too long, in which case the file is replaced by one holding only this record.
    /// `Gone` when the file disappeared meanwhile (removed by hand: nothing is recreated).
    /// `old` is the file's length and open handle as remembered.
    fn put(
        &self,
        id: &FileId,
        slot: &SlotLock<'_>,
        (old_len, old_file): (u64, Option<Arc<File>>),
        expires: u64,
        state: Arc<SessionState>,
    ) -> Result<SaveOutcome, BackendError> {
        let record = Record::encode(expires, &state)?;
        let appended = old_len + record.appended().len() as u64;
        let (len, file) = if appended > 4 * record.whole().len() as u64 + APPEND_SLACK {
            self.write(id, record.whole(), WriteMode::Overwrite)?;
            (record.whole().len() as u64, None)
        } else {
            match self.append(id, old_file, record.appended()) {
                Ok(file) => (appended, Some(file)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    slot.bump();
                    return Ok(SaveOutcome::Gone);
                }
                Err(err) => return Err(self.error("append to a session file", err)),
            }
        };
        let version = slot.bump();
        self.cache.put(
            &id.key,
            version,
            Stored {
                expires,
                state,
                len,
                file,
            },
        );
        Ok(SaveOutcome::Saved)
    }

    /// Appends `bytes` to an existing session file (never creating it), through `file` when
    /// this process has it open still; answers the open file.
    fn append(&self, id: &FileId, file: Option<Arc<File>>, bytes: &[u8]) -> io::Result<Arc<File>> {
        let file = match file {
            Some(file) => file,
            None => Arc::new(
                fs::OpenOptions::new()
                    .append(true)
                    .open(self.session_path(id))?,
            ),
        };
        (&*file).write_all(bytes)?;
        if self.sync {
            file.sync_data()?;
        }
        Ok(file)
    }

    /// Removes a session's file under its slot's lock, bumps the slot's version and forgets it.
    fn remove(&self, id: &FileId, slot: &SlotLock<'_>) -> Result<(), BackendError> {
        let removed = fs::remove_file(self.session_path(id))
            .or_else(not_found_ok)
            .map_err(|err| self.error("remove a session file", err));
        slot.bump();
        self.cache.forget(&id.key);
        removed
    }

    /// Loads a session from its file, for when [`cached`](Self::cached) had nothing (the caller
    /// asks it first), and remembers it.
    fn load(&self, id: &FileId) -> Result<Option<Arc<SessionState>>, BackendError> {
        // Read before the file: a change after it only makes the entry stale.
        let version = self.table.version(id.slot);
        let Some(stored) = self.read(&self.session_path(id))? else {
            self.cache.forget(&id.key);
            return Ok(None);
        };
        self.cache.put(&id.key, version, stored.clone());
        if stored.expires > now_ms() {
            return Ok(Some(stored.state));
        }
        tracing::debug!("session expired; removing its file");
        if let Err(err) = self.remove_if_expired(id) {
            tracing::debug!(error = %err, "could not remove an expired session file");
        }
        Ok(None)
    }

    /// Creates a session file for a fresh ID; `false` when the ID is taken.
    fn create_session(
        &self,
        id: &FileId,
        record: &Record,
        state: &Arc<SessionState>,
        expires: u64,
    ) -> Result<bool, BackendError> {
        // Read before the file exists: a later change of the slot only makes this entry stale.
        let version = self.table.version(id.slot);
        if !self.write(id, record.whole(), WriteMode::NoClobber)? {
            return Ok(false);
        }
        let stored = Stored {
            expires,
            state: Arc::clone(state),
            len: record.whole().len() as u64,
            file: None,
        };
        self.cache.put(&id.key, version, stored);
        Ok(true)
    }

    fn save(
        &self,
        id: &FileId,
        change: SessionChange,
        limit: usize,
        expires: u64,
    ) -> Result<SaveOutcome, BackendError> {
        let slot = self.table.lock(id.slot);
        let Some(stored) = self.stored(id, &slot)? else {
            return Ok(SaveOutcome::Gone);
        };
        if stored.expires <= now_ms() {
            return Ok(SaveOutcome::Gone);
        }
        // Copied only when a request still holds the remembered state.
        let mut state = match &change {
            SessionChange::Merge { .. } => Arc::unwrap_or_clone(stored.state),
            SessionChange::Replace(_) => SessionState::new(),
        };
        change.apply_to(&mut state);
        check_length(&state, limit)?;
        let old = (stored.len, stored.file);
        self.put(id, &slot, old, expires, Arc::new(state))
    }

    fn touch(&self, id: &FileId, expires: u64) -> Result<SaveOutcome, BackendError> {
        let slot = self.table.lock(id.slot);
        match self.stored(id, &slot)? {
            Some(stored) if stored.expires > now_ms() => {
                self.put(id, &slot, (stored.len, stored.file), expires, stored.state)
            }
            Some(_) => {
                self.remove(id, &slot)?;
                Ok(SaveOutcome::Gone)
            }
            None => Ok(SaveOutcome::Gone),
        }
    }

    fn delete(&self, id: &FileId) -> Result<(), BackendError> {
        let slot = self.table.lock(id.slot);
        self.remove(id, &slot)
    }

    /// The stored session's expiry under its slot's lock: the remembered one when the slot has
    /// not changed since, the file's first fields otherwise; `None` when there is no file.
    fn stored_expiry(&self, id: &FileId, slot: &SlotLock<'_>) -> Result<Option<u64>, BackendError> {
        match self.cache.get(&id.key, slot.version()) {
            Some(stored) => Ok(Some(stored.expires)),
            None => read_header_expiry(self, &self.session_path(id)),
        }
    }

    /// Removes a session file under its slot's lock; `true` when it was live.
    fn end_session(&self, id: &FileId) -> Result<bool, BackendError> {
        let slot = self.table.lock(id.slot);
        let live = self
            .stored_expiry(id, &slot)?
            .is_some_and(|expires| expires > now_ms());
        self.remove(id, &slot)?;
        Ok(live)
    }

    /// Removes a session file if it is (still, under the lock) expired; `true` when removed.
    fn remove_if_expired(&self, id: &FileId) -> Result<bool, BackendError> {
        let slot = self.table.lock(id.slot);
        let Some(expires) = self.stored_expiry(id, &slot)? else {
            return Ok(false);
        };
        if expires > now_ms() {
            return Ok(false);
        }
        self.remove(id, &slot)?;
        Ok(true)
    }

    /// Removes expired session files and stale temporary files.
    fn sweep(&self) -> Result<SweepReport, BackendError> {
        let entries =
            fs::read_dir(&self.dir).map_err(|err| self.error("list the session files", err))?;
        let mut report = SweepReport::default();
        let now = now_ms();
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                if self.remove_stale_tmp(&entry.path()) {
                    report.temporary += 1;
                }
                continue;
            }
            if name.starts_with(table::HOLDER_PREFIX) {
                // A holder file whose process stopped without removing it (`kill -9`).
                let path = entry.path();
                if is_stale(&path) && !table::holder_running(&path) {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            if let Some(kept) = index::sweep_entry(self, name) {
                if let Err(err) = kept {
                    tracing::warn!(error = %err, "could not clean up an owner index or a lease");
                }
                continue;
            }
            let Some(key) = name
                .strip_prefix(FILE_PREFIX)
                .and_then(|n| n.strip_suffix(FILE_SUFFIX))
            else {
                continue;
            };
            let Ok(key) = SessionId::parse(key) else {
                continue;
            };
            let header = match read_whole(&entry.path()) {
                Ok(bytes) => decode_header(&bytes),
                Err(_) => continue, // removed meanwhile, or unreadable: not ours to judge now
            };
            match header {
                Ok(header) if header.expires <= now => {
                    match self.remove_if_expired(&FileId::new(&key)) {
                        Ok(true) => report.sessions += 1,
                        Ok(false) => {}
                        Err(err) => {
                            tracing::warn!(error = %err, "could not remove an expired session file")
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => report.corrupt += 1,
            }
        }
        if report.corrupt > 0 {
            tracing::warn!(
                corrupt = report.corrupt,
                folder = %self.dir.display(),
                "session files that cannot be decoded were left in place"
            );
        }
        tracing::debug!(
            removed = report.sessions,
            temporary = report.temporary,
            "removed expired session files"
        );
        Ok(report)
    }

    /// Removes a temporary file older than [`STALE_TMP_AGE`]; `true` when removed.
    fn remove_stale_tmp(&self, path: &Path) -> bool {
        is_stale(path) && fs::remove_file(path).is_ok()
    }

    /// The folder exists and a file can be created and removed in it.
    fn health(&self) -> HealthStatus {
        let folder = self.dir.display();
        match fs::metadata(&self.dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return HealthStatus::down(format!("session folder {folder} is not a folder")),
            Err(err) => {
                return HealthStatus::down(format!("session folder {folder} is unreachable: {err}"))
            }
        }
        let probe = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&self.dir);
        match probe.and_then(|probe| probe.close()) {
            Ok(()) => HealthStatus::up(),
            Err(err) => {
                HealthStatus::down(format!("session folder {folder} is not writable: {err}"))
            }
        }
    }
}

#[derive(Debug, Default)]
struct SweepReport {
    /// Expired session files removed.
    sessions: usize,
    /// Stale temporary files removed.
    temporary: usize,
    /// Session files that could not be decoded (left in place).
    corrupt: usize,
}

/// Whether the file at `path` was last modified more than [`STALE_TMP_AGE`] ago.
fn is_stale(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age > STALE_TMP_AGE)
}

fn not_found_ok(err: io::Error) -> io::Result<()> {
    if err.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(err)
    }
}

/// Starts the background cleanup, when a Tokio runtime is running and `interval` is not zero.
fn start_cleanup(folder: &Arc<Folder>, interval: Duration) -> Option<tokio::task::AbortHandle> {
    if interval.is_zero() {
        return None;
    }
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let folder = Arc::clone(folder);
    let task = runtime.spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let folder = Arc::clone(&folder);
            let span = tracing::debug_span!("flamingo_session.file.cleanup");
            if let Err(err) = run_blocking(move || folder.sweep()).instrument(span).await {
                tracing::warn!(error = %err, "session file cleanup failed");
            }
        }
    });
    Some(task.abort_handle())
}

/// Whether `dir` is on a file system held in memory (tmpfs or ramfs).
#[cfg(target_os = "linux")]
fn in_memory(dir: &Path) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    rustix::fs::statfs(dir).is_ok_and(|fs| {
        // `f_type`'s integer type differs between targets.
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        let kind = fs.f_type as u64;
        kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
    })
}

/// Whether `dir` is on a file system held in memory: not known off Linux, so never assumed.
#[cfg(not(target_os = "linux"))]
fn in_memory(_dir: &Path) -> bool {
    false
}

/// Runs blocking file work on Tokio's blocking pool.
async fn run_blocking<T, F>(work: F) -> Result<T, BackendError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BackendError> + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|err| BackendError::other(format!("a file session task failed: {err}")))?
}

/// Reads a whole file: as [`fs::read`] but without asking the file's size first, which saves a
/// system call on every read of a session (a few microseconds here, see BENCHMARKS.md). A session
/// file of a few kilobytes takes one read and one more that finds the end.
pub(super) fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut bytes = Vec::with_capacity(READ_CAPACITY);
    // `Read for &File` would ask for the size itself; `take` reads without the hint.
    io::Read::read_to_end(&mut io::Read::take(&file, u64::MAX), &mut bytes)?;
    Ok(bytes)
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// The expiry (Unix milliseconds) of a session written now with `ttl`.
fn expiry(ttl: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

/// A record as written: one line of JSON.
#[derive(Serialize)]
struct FileOut<'a> {
    v: u32,
    expires: u64,
    /// Values that are JSON texts without a line break, embedded as they are.
    state: BTreeMap<&'a str, &'a RawValue>,
    /// Values that are not a JSON text on their own (never written by `Session::store`), or
    /// whose text holds a line break, kept as JSON strings so that every value round-trips
    /// exactly and a record stays on one line.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    text: BTreeMap<&'a str, &'a str>,
}

/// A record as read.
#[derive(Deserialize)]
struct FileIn {
    v: u32,
    expires: u64,
    state: HashMap<String, Box<RawValue>>,
    #[serde(default)]
    text: HashMap<String, String>,
}

/// Only the first fields, for the cleanup.
#[derive(Deserialize)]
struct FileHeader {
    v: u32,
    expires: u64,
}

/// An encoded record: `\n`, the JSON line, `\n`.
///
/// A session file is a sequence of records, one per line, and the last complete one that decodes
/// is the session. Appending writes the leading line break too, so that a record whose append was
/// cut short (the writer was killed) ends up on a line of its own, which is skipped, instead of
/// joining the next record's line.
struct Record(Vec<u8>);

impl Record {
    fn encode(expires: u64, state: &SessionState) -> Result<Record, BackendError> {
        let mut out = FileOut {
            v: FORMAT_VERSION,
            expires,
            state: BTreeMap::new(),
            text: BTreeMap::new(),
        };
        for (key, value) in state {
            match serde_json::from_str::<&RawValue>(value) {
                // `from_str` trims surrounding whitespace; such a value is kept as text to stay
                // exact. A line break inside it would split the record's line.
                Ok(raw)
                    if raw.get().len() == value.len()
                        && !value.bytes().any(|b| b == b'\n' || b == b'\r') =>
                {
                    out.state.insert(key, raw);
                }
                _ => {
                    out.text.insert(key, value);
                }
            }
        }
        let size = crate::backend::encoded_len(state) + 64 + 8 * state.len();
        let mut bytes = Vec::with_capacity(size);
        bytes.push(b'\n');
        serde_json::to_writer(&mut bytes, &out)
            .map_err(|err| BackendError::other(format!("cannot encode a session file: {err}")))?;
        bytes.push(b'\n');
        Ok(Record(bytes))
    }

    /// The record as a whole file holds it.
    fn whole(&self) -> &[u8] {
        &self.0[1..]
    }

    /// The record as appended to a file.
    fn appended(&self) -> &[u8] {
        &self.0
    }
}

/// A decoding error, described without quoting the file's content.
fn corrupt(err: &serde_json::Error) -> BackendError {
    BackendError::Corrupt(format!(
        "session file is not valid ({:?} error at line {} column {})",
        err.classify(),
        err.line(),
        err.column()
    ))
}

fn check_version(v: u32) -> Result<(), BackendError> {
    if v == FORMAT_VERSION || v == 1 {
        Ok(())
    } else {
        Err(BackendError::Corrupt(format!(
            "session file has format version {v}; this version reads 1 and {FORMAT_VERSION}"
        )))
    }
}

/// Decodes the last complete record of a file with `decode_one`. A file without a line break is
/// one record (format version 1); otherwise the text after the last line break is a record still
/// being written, or one whose writer was killed, and is ignored, as are lines that do not decode
/// (cut short the same way) when a later one does.
fn last_record<T>(
    bytes: &[u8],
    decode_one: impl Fn(&[u8]) -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
        return decode_one(bytes);
    };
    let mut first_error = None;
    for line in bytes[..end].split(|b| *b == b'\n').rev() {
        if line.is_empty() {
            continue;
        }
        match decode_one(line) {
            Ok(decoded) => return Ok(decoded),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    Err(first_error
        .unwrap_or_else(|| BackendError::Corrupt("session file holds no record".to_owned())))
}

fn decode(bytes: &[u8]) -> Result<(u64, SessionState), BackendError> {
    last_record(bytes, |line| {
        let file: FileIn = serde_json::from_slice(line).map_err(|err| corrupt(&err))?;
        check_version(file.v)?;
        let mut state: SessionState = file
            .state
            .into_iter()
            .map(|(k, v)| (k, Box::<str>::from(v).into_string()))
            .collect();
        state.extend(file.text);
        Ok((file.expires, state))
    })
}

/// The expiry of the session file at `path`; `None` when there is none.
fn read_header_expiry(folder: &Folder, path: &Path) -> Result<Option<u64>, BackendError> {
    match read_whole(path) {
        Ok(bytes) => decode_header(&bytes).map(|header| Some(header.expires)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(folder.error("read a session file", err)),
    }
}

fn decode_header(bytes: &[u8]) -> Result<FileHeader, BackendError> {
    last_record(bytes, |line| {
        let header: FileHeader = serde_json::from_slice(line).map_err(|err| corrupt(&err))?;
        check_version(header.v)?;
        Ok(header)
    })
}
