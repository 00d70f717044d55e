//! The folder's shared table: a lock and a version for each of [`SLOTS`] slots, in a file every
//! process that uses the folder maps into its memory (`.table-v2`).
//!
//! A session belongs to the slot named by the first 16 bits of its ID's SHA-256. Every change to
//! a session file (write, removal) happens under its slot's lock and bumps the slot's version
//! before the lock is released. A process that remembers a session together with the version its
//! slot had then knows, from one atomic read of shared memory and without a system call, whether
//! any process has changed the file since: that is what lets the file backend serve a session it
//! read or wrote from memory and append a change to its file without reading it first.
//!
//! The lock is a word taken with a compare-and-swap. A process that dies holding one (`kill -9`
//! in the middle of a write) does not block the slot for ever: each process holds an advisory
//! file lock on its own `.holder-<token>` file for as long as it has the folder open, and a
//! process that has waited for a slot for a while tries that file lock. When it gets it, the
//! holder is gone, and the slot is taken over (with a warning).
//!
//! The processes must run on one machine: shared memory is not shared across a network file
//! system.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// How many slots the table has; a session's slot is the first 16 bits of its ID's SHA-256.
pub(super) const SLOTS: usize = 1 << 16;
/// Each slot is a lock word and a version word.
const SLOT_BYTES: usize = 16;
const TABLE_BYTES: u64 = (SLOTS * SLOT_BYTES) as u64;
/// The table's file name; the `v2` changes with its layout.
pub(super) const TABLE_NAME: &str = ".table-v2";
/// Holder files are `.holder-<token as 16 hex digits>`.
pub(super) const HOLDER_PREFIX: &str = ".holder-";
/// How long a waiter waits between two checks whether the slot's holder is still running.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(200);

/// The mapped table of one folder, and this process's holder file.
pub(super) struct Table {
    map: memmap2::MmapRaw,
    /// Nonzero, random, and what this process writes into a lock word it takes.
    token: u64,
    /// Held locked for as long as the table is open: the sign that `token` is alive.
    holder: File,
    holder_path: PathBuf,
    dir: PathBuf,
}

impl Drop for Table {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.holder);
        let _ = fs::remove_file(&self.holder_path);
    }
}

impl Table {
    /// Opens (or creates, zeroed) the folder's table and this process's holder file.
    pub(super) fn open(dir: &Path) -> io::Result<Table> {
        let file = open_rw(&dir.join(TABLE_NAME))?;
        // Sizing it under its own file lock: two processes starting at once size it once.
        fs4::FileExt::lock(&file)?;
        let len = file.metadata()?.len();
        if len == 0 {
            file.set_len(TABLE_BYTES)?;
        } else if len != TABLE_BYTES {
            return Err(io::Error::other(format!(
                "{TABLE_NAME} has {len} bytes where this version expects {TABLE_BYTES}"
            )));
        }
        fs4::FileExt::unlock(&file)?;
        let map = memmap2::MmapRaw::map_raw(&file)?;
        let mut token = 0;
        while token == 0 {
            token = rand::random::<u64>();
        }
        let holder_path = dir.join(format!("{HOLDER_PREFIX}{token:016x}"));
        let holder = open_rw(&holder_path)?;
        fs4::FileExt::lock(&holder)?;
        Ok(Table {
            map,
            token,
            holder,
            holder_path,
            dir: dir.to_path_buf(),
        })
    }

    /// Word `index` of the table (slot `i` has its lock at `2i` and its version at `2i + 1`).
    fn word(&self, index: usize) -> &AtomicU64 {
        assert!(index < SLOTS * 2, "table word {index} out of range");
        let ptr = self.map.as_ptr().cast::<AtomicU64>();
        // SAFETY: the mapping is `TABLE_BYTES` long (checked in `open`, and no process of ours
        // ever shrinks the file) and page aligned, so word `index < SLOTS * 2` lies inside it
        // and is aligned for `AtomicU64`. It stays mapped for as long as `self` lives, which
        // bounds the returned reference. Every process accesses the words only atomically, so
        // no access is a data race.
        #[allow(unsafe_code)]
        unsafe {
            &*ptr.add(index)
        }
    }

    /// The slot's version now: it changes whenever a session file of the slot changes.
    pub(super) fn version(&self, slot: u16) -> u64 {
        self.word(usize::from(slot) * 2 + 1).load(Ordering::Acquire)
    }

    /// Takes the slot's lock, waiting for its holder (or taking it over from a holder that is no
    /// longer running). The lock is released when the guard drops.
    pub(super) fn lock(&self, slot: u16) -> SlotLock<'_> {
        let lock = self.word(usize::from(slot) * 2);
        let mut spins = 0u32;
        let mut waiting_since: Option<(u64, Instant)> = None;
        loop {
            match lock.compare_exchange_weak(0, self.token, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return SlotLock { table: self, slot },
                Err(0) => continue,
                Err(holder) => {
                    spins += 1;
                    if spins < 64 {
                        std::hint::spin_loop();
                        continue;
                    }
                    if spins < 128 {
                        std::thread::yield_now();
                        continue;
                    }
                    match waiting_since {
                        Some((same, since)) if same == holder => {
                            if since.elapsed() >= LIVENESS_INTERVAL {
                                if !self.is_running(holder)
                                    && lock
                                        .compare_exchange(
                                            holder,
                                            self.token,
                                            Ordering::Acquire,
                                            Ordering::Relaxed,
                                        )
                                        .is_ok()
                                {
                                    tracing::warn!(
                                        "a process stopped while holding a session file lock; \
                                         taking the lock over"
                                    );
                                    return SlotLock { table: self, slot };
                                }
                                waiting_since = Some((holder, Instant::now()));
                            }
                        }
                        _ => waiting_since = Some((holder, Instant::now())),
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
    }

    /// Whether the process that took a lock with `token` still has the folder open.
    fn is_running(&self, token: u64) -> bool {
        if token == self.token {
            return true;
        }
        holder_running(&self.dir.join(format!("{HOLDER_PREFIX}{token:016x}")))
    }
}

/// Whether the holder file at `path` is locked by a running process. A missing file means no.
pub(super) fn holder_running(path: &Path) -> bool {
    let Ok(file) = fs::OpenOptions::new().read(true).write(true).open(path) else {
        return false;
    };
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {
            let _ = fs4::FileExt::unlock(&file);
            false
        }
        Err(fs4::TryLockError::WouldBlock) => true,
        // Cannot tell: assume it runs, so that nothing is taken from a live process.
        Err(fs4::TryLockError::Error(_)) => true,
    }
}

/// A slot's lock, held until it drops.
pub(super) struct SlotLock<'a> {
    table: &'a Table,
    slot: u16,
}

impl SlotLock<'_> {
    /// The slot's version (unchanged by anyone else while the lock is held).
    pub(super) fn version(&self) -> u64 {
        self.table.version(self.slot)
    }

    /// Records that a session file of the slot changed; answers the slot's new version.
    pub(super) fn bump(&self) -> u64 {
        self.table
            .word(usize::from(self.slot) * 2 + 1)
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1)
    }
}

impl Drop for SlotLock<'_> {
    fn drop(&mut self) {
        // Only when still ours: a lock taken over from this process (it was thought stopped)
        // belongs to the process that took it.
        let _ = self
            .table
            .word(usize::from(self.slot) * 2)
            .compare_exchange(self.table.token, 0, Ordering::Release, Ordering::Relaxed);
    }
}

fn open_rw(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_whose_holder_stopped_is_taken_over_and_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let stopped = Table::open(dir.path()).unwrap();
        let other = Table::open(dir.path()).unwrap();
        let live = other.lock(7);
        let version = live.bump();

        // A process that holds slot 9 and stops without releasing it: its lock word stays set,
        // its holder file is gone.
        std::mem::forget(stopped.lock(9));
        drop(stopped);

        let started = Instant::now();
        let taken = Table::open(dir.path()).unwrap();
        let slot = taken.lock(9);
        assert!(
            started.elapsed() >= LIVENESS_INTERVAL,
            "it waited before taking over"
        );
        assert_eq!(slot.version(), 0);
        drop(slot);
        assert_eq!(taken.version(7), version, "versions are shared");

        // Slot 7 is held by a process that still runs: it is not taken.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _slot = taken.lock(7);
                tx.send(()).unwrap();
            });
            assert!(
                rx.recv_timeout(LIVENESS_INTERVAL * 3).is_err(),
                "slot 7 was taken from a live holder"
            );
            drop(live);
            rx.recv_timeout(Duration::from_secs(5))
                .expect("slot 7 is free once released");
        });
    }

    #[test]
    fn a_table_of_another_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(TABLE_NAME), b"short").unwrap();
        let err = Table::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("expects"), "{err}");
    }
}
