//! The file backend against real folders: the conformance suite, path safety, crash safety,
//! cleanup, sharing a folder, permissions and health.

use std::{
    collections::HashSet,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use flamingo_session::{
    backend::{BackendError, SaveOutcome, SessionBackend, SessionChange, SessionId, SessionState},
    file::{FileBackend, FileOptions},
};

const STORE_LENGTH: usize = 64 * 1024;
const HOUR: Duration = Duration::from_secs(3600);

/// Set in the child process of [`kill_9_during_writes_leaves_no_torn_file`].
const CRASH_CHILD_ENV: &str = "FLAMINGO_FILE_BACKEND_CRASH_CHILD";
/// What the child prints once its first sessions are written.
const READY: &str = "crash-writer-ready";

fn options() -> FileOptions {
    FileOptions {
        store_length: STORE_LENGTH,
        cleanup_interval: Duration::ZERO,
        sync: true,
    }
}

fn state(pairs: &[(&str, &str)]) -> SessionState {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn merge(pairs: &[(&str, &str)]) -> SessionChange {
    SessionChange::Merge {
        set: state(pairs),
        remove: Vec::new(),
    }
}

/// The session files in a folder (names `session_<key>.json`), as keys.
fn session_keys(dir: &Path) -> Vec<SessionId> {
    fs::read_dir(dir)
        .expect("list the session folder")
        .filter_map(|entry| {
            let name = entry
                .expect("read a folder entry")
                .file_name()
                .into_string()
                .ok()?;
            name.strip_prefix("session_")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list the folder")
        .map(|entry| {
            entry
                .expect("read a folder entry")
                .file_name()
                .into_string()
                .unwrap()
        })
        .collect();
    names.sort();
    names
}

fn session_file(backend: &FileBackend, key: &SessionId) -> PathBuf {
    backend.dir().join(format!("session_{}.json", key.expose()))
}

/// Polls `condition` every 20 ms for up to 30 s (a bound against hanging, not a timing check).
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite() {
    let folder = tempfile::tempdir().unwrap();
    let backend = FileBackend::open(folder.path().join("sessions"), options())
        .await
        .unwrap();
    flamingo_session::conformance::run(&backend, STORE_LENGTH).await;
}

#[tokio::test]
async fn keys_that_are_not_session_keys_never_name_a_path() {
    let root = tempfile::tempdir().unwrap();
    let backend = FileBackend::open(root.path().join("sessions"), options())
        .await
        .unwrap();
    let slash_43 = format!("{}/{}", "a".repeat(21), "b".repeat(21));
    assert_eq!(slash_43.len(), 43);
    let dots_43 = format!("..{}", "a".repeat(41));
    let long = "a".repeat(10_000);
    let bad_keys = [
        "../x",
        "/etc/passwd",
        "a/b",
        slash_43.as_str(),
        "",
        long.as_str(),
        "..",
        "../../../../../../../../../../../../../tmp/x",
        dots_43.as_str(),
        &"a".repeat(21),
        &"a".repeat(129),
        &format!("{}\0", "a".repeat(42)),
        &format!("{}\\", "a".repeat(42)),
    ];
    for key in bad_keys {
        let shown = &key[..key.len().min(50)];
        assert!(
            SessionId::parse(key).is_err(),
            "{shown:?} must not be a session ID, so no backend call can name it"
        );
    }
    // The backend is only ever handed IDs; every operation on a fresh one writes nothing.
    let ttl = Duration::from_secs(60);
    let id = SessionId::generate();
    assert_eq!(backend.load(&id).await.unwrap(), None);
    assert_eq!(
        backend.save(&id, merge(&[("a", "1")]), ttl).await.unwrap(),
        SaveOutcome::Gone
    );
    assert_eq!(backend.touch(&id, ttl).await.unwrap(), SaveOutcome::Gone);
    backend.delete(&id).await.unwrap();
    // Nothing was written anywhere: not next to the folder, and no session in it (only the
    // shared lock table and this backend's holder file).
    assert_eq!(file_names(root.path()), ["sessions"]);
    let names = file_names(backend.dir());
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], ".holder-".to_owned() + &names[0][8..]);
    assert_eq!(names[1], ".table-v2");
}

#[tokio::test]
async fn values_are_embedded_as_json_and_round_trip_exactly() {
    let folder = tempfile::tempdir().unwrap();
    let backend = FileBackend::open(folder.path(), options()).await.unwrap();
    let stored = state(&[
        (
            "user",
            r#"{"t":"app::User","v":{"name":"Ada","roles":["admin"]}}"#,
        ),
        ("count", r#"{"t":"u64","v":3}"#),
        ("not json", "plain text"),
        ("padded", " 1 "),
        ("unicode", r#""grüße 🐦""#),
        ("pretty", "{\n  \"a\": 1\n}"),
    ]);
    let key = backend.create(stored.clone(), HOUR).await.unwrap();
    assert_eq!(backend.load(&key).await.unwrap(), Some(stored.clone()));
    // Read back by another backend, which has nothing in memory.
    let other = FileBackend::open(folder.path(), options()).await.unwrap();
    assert_eq!(other.load(&key).await.unwrap(), Some(stored));

    let text = fs::read_to_string(session_file(&backend, &key)).unwrap();
    assert_eq!(text.lines().count(), 1, "one record, on one line: {text}");
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["v"], 2);
    // A value with a line break is kept as text, so that the record stays on its line.
    assert_eq!(file["text"]["pretty"], "{\n  \"a\": 1\n}");
    assert!(file["expires"].as_u64().unwrap() > 0);
    // The JSON value is embedded as JSON, not as a string holding escaped JSON.
    assert_eq!(file["state"]["user"]["v"]["name"], "Ada");
    assert_eq!(file["state"]["count"]["v"], 3);
    assert_eq!(file["text"]["not json"], "plain text");
    println!("session file: {text}");
}

#[tokio::test]
async fn corrupt_files_are_reported_as_corrupt() {
    let folder = tempfile::tempdir().unwrap();
    let backend = FileBackend::open(folder.path(), options()).await.unwrap();
    let cases: [&[u8]; 5] = [
        b"{\"v\":1,\"expires\":99999999999999,\"state\":{\"a\":1",
        b"",
        b"\x00\x01garbage",
        b"{\"v\":3,\"expires\":99999999999999,\"state\":{}}\n",
        b"{\"v\":1,\"expires\":\"soon\",\"state\":{}}",
    ];
    for content in cases {
        let key = SessionId::generate();
        fs::write(session_file(&backend, &key), content).unwrap();
        let loaded = backend.load(&key).await;
        assert!(
            matches!(loaded, Err(BackendError::Corrupt(_))),
            "{loaded:?}"
        );
        // The message says what is wrong without quoting the file.
        let message = loaded.unwrap_err().to_string();
        assert!(
            !message.contains("soon") && !message.contains(key.expose()),
            "{message}"
        );
        // A save cannot tell a live session from what it cannot read: it writes nothing.
        let merged = backend.save(&key, merge(&[("b", "2")]), HOUR).await;
        assert!(
            matches!(merged, Err(BackendError::Corrupt(_))),
            "{merged:?}"
        );
        let replace = SessionChange::Replace(state(&[("b", "2")]));
        let replaced = backend.save(&key, replace, HOUR).await;
        assert!(
            matches!(replaced, Err(BackendError::Corrupt(_))),
            "{replaced:?}"
        );
        assert_eq!(fs::read(session_file(&backend, &key)).unwrap(), content);
    }
}

#[tokio::test]
async fn a_session_too_large_is_refused_and_the_stored_one_stays() {
    let folder = tempfile::tempdir().unwrap();
    let options = FileOptions {
        store_length: 100,
        cleanup_interval: Duration::ZERO,
        sync: true,
    };
    let backend = FileBackend::open(folder.path(), options).await.unwrap();
    let key = backend
        .create(state(&[("a", "\"small\"")]), HOUR)
        .await
        .unwrap();
    let big = format!("\"{}\"", "x".repeat(200));
    let result = backend.save(&key, merge(&[("b", &big)]), HOUR).await;
    assert!(
        matches!(result, Err(BackendError::TooLarge { limit: 100, .. })),
        "{result:?}"
    );
    assert_eq!(
        backend.load(&key).await.unwrap(),
        Some(state(&[("a", "\"small\"")]))
    );
    let created = backend.create(state(&[("b", &big)]), HOUR).await;
    assert!(
        matches!(created, Err(BackendError::TooLarge { .. })),
        "{created:?}"
    );
    assert_eq!(session_keys(backend.dir()), [key]);
}

/// Not a test of its own: the child process of [`kill_9_during_writes_leaves_no_torn_file`].
/// Without its environment variable it returns at once.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let backend = FileBackend::open(&dir, options()).await.unwrap();
        let mut keys = Vec::new();
        for _ in 0..16 {
            keys.push(backend.create(state(&[("n", "0")]), HOUR).await.unwrap());
        }
        println!("{READY}");
        std::io::stdout().flush().unwrap();
        // Write until killed; stop by itself after a minute should the parent be gone.
        let stop = Instant::now() + Duration::from_secs(60);
        let keys = Arc::new(keys);
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let backend = backend.clone();
                let keys = Arc::clone(&keys);
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while Instant::now() < stop {
                        let key = &keys[(n + writer) % keys.len()];
                        let value = format!("\"{}\"", "x".repeat(1000 + (n * 7919) % 14_000));
                        let count = n.to_string();
                        let slot = format!("w{writer}");
                        let change = merge(&[(slot.as_str(), value.as_str()), ("n", &count)]);
                        assert_eq!(
                            backend.save(key, change, HOUR).await.unwrap(),
                            SaveOutcome::Saved
                        );
                        if n.is_multiple_of(3) {
                            let fresh =
                                backend.create(state(&[("v", &value)]), HOUR).await.unwrap();
                            backend.delete(&fresh).await.unwrap();
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

#[test]
fn kill_9_during_writes_leaves_no_torn_file() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().join("sessions");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_writer_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer child process");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            // libtest prints "test crash_writer_child ... " on the same line first.
            Some(Ok(line)) if line.ends_with(READY) => break,
            Some(Ok(_)) => continue,
            other => panic!("the writer child ended before it was ready: {other:?}"),
        }
    }
    // Let it write for a while, then kill -9 (Child::kill sends SIGKILL on Unix).
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child was killed, not finished: {status:?}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backend = FileBackend::open(&dir, options()).await.unwrap();
        let keys = session_keys(&dir);
        let (mut readable, mut unreadable, mut gone) = (0, 0, 0);
        let mut merged_values = 0;
        for key in &keys {
            match backend.load(key).await {
                Ok(Some(state)) => {
                    readable += 1;
                    merged_values += state.len();
                    for value in state.values() {
                        serde_json::from_str::<serde_json::Value>(value).unwrap();
                    }
                }
                Ok(None) => gone += 1,
                Err(err) => {
                    unreadable += 1;
                    eprintln!("unreadable session file: {err}");
                }
            }
        }
        let temporary = file_names(&dir)
            .iter()
            .filter(|n| n.starts_with(".tmp-"))
            .count();
        println!(
            "after kill -9: {} session files, {readable} readable ({merged_values} values), \
             {unreadable} unreadable, {gone} gone, {temporary} temporary files left",
            keys.len()
        );
        assert_eq!(unreadable, 0, "a killed writer left torn session files");
        assert!(
            readable >= 16,
            "the 16 sessions written before `ready` are all readable"
        );
        // Every session takes writes again: a slot lock the child held when it was killed is
        // taken over, and a record it left half written is skipped.
        for key in &keys {
            if backend.load(key).await.unwrap().is_none() {
                continue;
            }
            let saved = backend.save(key, merge(&[("after", "1")]), HOUR).await;
            assert_eq!(saved.unwrap(), SaveOutcome::Saved);
        }
        let fresh = FileBackend::open(&dir, options()).await.unwrap();
        for key in &keys {
            if let Some(state) = fresh.load(key).await.unwrap() {
                assert_eq!(state.get("after").map(String::as_str), Some("1"));
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_task_removes_expired_files() {
    let folder = tempfile::tempdir().unwrap();
    let options = FileOptions {
        store_length: STORE_LENGTH,
        cleanup_interval: Duration::from_millis(100),
        sync: true,
    };
    let backend = FileBackend::open(folder.path(), options).await.unwrap();
    let short = backend
        .create(state(&[("a", "1")]), Duration::from_millis(50))
        .await
        .unwrap();
    let long = backend.create(state(&[("a", "2")]), HOUR).await.unwrap();
    let short_file = session_file(&backend, &short);
    // Nothing loads `short`: only the background task can remove its file.
    eventually("the cleanup task removes the expired file", || {
        !short_file.exists()
    })
    .await;
    assert!(session_file(&backend, &long).exists());
    assert_eq!(
        backend.load(&long).await.unwrap(),
        Some(state(&[("a", "2")]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_task_stops_with_the_backend() {
    let folder = tempfile::tempdir().unwrap();
    let options = FileOptions {
        store_length: STORE_LENGTH,
        cleanup_interval: Duration::from_millis(50),
        sync: true,
    };
    let backend = FileBackend::open(folder.path(), options).await.unwrap();
    let clone = backend.clone();
    drop(backend);
    // A clone keeps the task alive.
    let key = clone
        .create(state(&[("a", "1")]), Duration::from_millis(10))
        .await
        .unwrap();
    let file = session_file(&clone, &key);
    eventually("the cleanup of a live clone", || !file.exists()).await;
    drop(clone);
    // With the last clone gone the task is stopped: an expired file now stays.
    let writer = FileBackend::open(folder.path(), self::options())
        .await
        .unwrap();
    let key = writer
        .create(state(&[("a", "1")]), Duration::from_millis(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        session_file(&writer, &key).exists(),
        "a dropped backend's cleanup task still runs"
    );
}

#[tokio::test]
async fn remove_expired_removes_expired_sessions_and_stale_temporary_files() {
    let folder = tempfile::tempdir().unwrap();
    let backend = FileBackend::open(folder.path(), options()).await.unwrap();
    let mut expired = Vec::new();
    for i in 0..3 {
        let value = i.to_string();
        expired.push(
            backend
                .create(state(&[("a", &value)]), Duration::from_millis(1))
                .await
                .unwrap(),
        );
    }
    let live = backend.create(state(&[("a", "1")]), HOUR).await.unwrap();
    // A write a crash interrupted two minutes ago, and one in progress now.
    let stale = backend.dir().join(".tmp-crashed");
    fs::write(&stale, b"{\"v\":1,").unwrap();
    let two_minutes_ago = SystemTime::now() - Duration::from_secs(120);
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_minutes_ago)
        .unwrap();
    let in_progress = backend.dir().join(".tmp-writing");
    fs::write(&in_progress, b"{\"v\":1,").unwrap();
    // Unrelated files are left alone.
    fs::write(backend.dir().join("README"), b"not a session").unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    assert_eq!(backend.remove_expired().await.unwrap(), 3);
    assert!(!stale.exists() && in_progress.exists());
    assert!(backend.dir().join("README").exists());
    assert_eq!(session_keys(backend.dir()), [live]);
    assert_eq!(backend.remove_expired().await.unwrap(), 0);

    // Loading an expired session removes its file too.
    let key = backend
        .create(state(&[("a", "1")]), Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(backend.load(&key).await.unwrap(), None);
    assert!(!session_file(&backend, &key).exists());
    // Neither touching nor saving an expired session brings it back.
    let key = backend
        .create(state(&[("a", "1")]), Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(backend.touch(&key, HOUR).await.unwrap(), SaveOutcome::Gone);
    assert_eq!(backend.load(&key).await.unwrap(), None);
    assert_eq!(
        backend
            .save(&key, merge(&[("b", "2")]), HOUR)
            .await
            .unwrap(),
        SaveOutcome::Gone
    );
    assert_eq!(backend.load(&key).await.unwrap(), None);
    assert!(!session_file(&backend, &key).exists());
}

#[tokio::test]
async fn backends_sharing_a_folder_and_a_restart_see_the_same_sessions() {
    let folder = tempfile::tempdir().unwrap();
    let one = FileBackend::open(folder.path(), options()).await.unwrap();
    let two = FileBackend::open(folder.path(), options()).await.unwrap();
    let key = one
        .create(state(&[("from", "\"one\"")]), HOUR)
        .await
        .unwrap();
    assert_eq!(
        two.load(&key).await.unwrap(),
        Some(state(&[("from", "\"one\"")]))
    );
    assert_eq!(
        two.save(&key, merge(&[("also", "\"two\"")]), HOUR)
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
    let both = state(&[("from", "\"one\""), ("also", "\"two\"")]);
    assert_eq!(one.load(&key).await.unwrap(), Some(both.clone()));
    drop(one);
    drop(two);

    let restarted = FileBackend::open(folder.path(), options()).await.unwrap();
    assert_eq!(restarted.load(&key).await.unwrap(), Some(both));
    restarted.delete(&key).await.unwrap();
    assert_eq!(restarted.load(&key).await.unwrap(), None);
}

/// Merges `tasks` keys into one session at once, alternating between two backends on one
/// folder (two processes: only the file lock keeps them apart); checks that none is lost and
/// answers the session's key.
async fn merge_concurrently(one: &FileBackend, two: &FileBackend, tasks: usize) -> SessionId {
    let key = one.create(state(&[("start", "0")]), HOUR).await.unwrap();
    let tasks: Vec<_> = (0..tasks)
        .map(|i| {
            let backend = if i % 2 == 0 { one.clone() } else { two.clone() };
            let key = key.clone();
            tokio::spawn(async move {
                let name = format!("task{i}");
                let value = i.to_string();
                backend
                    .save(&key, merge(&[(&name, &value)]), HOUR)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let count = tasks.len();
    for task in tasks {
        assert_eq!(task.await.unwrap(), SaveOutcome::Saved);
    }
    let stored = two.load(&key).await.unwrap().expect("the session exists");
    let names: HashSet<&str> = stored.keys().map(String::as_str).collect();
    assert_eq!(names.len(), count + 1, "lost merges: {names:?}");
    for i in 0..count {
        assert_eq!(stored[&format!("task{i}")], i.to_string());
    }
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_merges_into_one_session_keep_every_key() {
    let folder = tempfile::tempdir().unwrap();
    let one = FileBackend::open(folder.path(), options()).await.unwrap();
    let two = FileBackend::open(folder.path(), options()).await.unwrap();
    merge_concurrently(&one, &two, 64).await;
}

#[cfg(unix)]
#[tokio::test]
async fn files_are_private_and_an_existing_folder_is_used_as_it_is() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let root = tempfile::tempdir().unwrap();
    let created = root.path().join("a/b/sessions");
    let backend = FileBackend::open(&created, options()).await.unwrap();
    assert_eq!(mode(&created), 0o700, "a created folder is private");
    let key = backend.create(state(&[("a", "1")]), HOUR).await.unwrap();
    assert_eq!(
        backend
            .save(&key, merge(&[("b", "2")]), HOUR)
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(backend.touch(&key, HOUR).await.unwrap(), SaveOutcome::Saved);
    for name in file_names(&created) {
        assert_eq!(mode(&created.join(&name)), 0o600, "{name} is private");
    }

    // An existing folder, with files of its own, is fine and left as it is.
    let existing = root.path().join("existing");
    fs::create_dir(&existing).unwrap();
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(existing.join("keep.txt"), b"mine").unwrap();
    let backend = FileBackend::open(&existing, options()).await.unwrap();
    assert!(backend.health().await.alive);
    let key = backend.create(state(&[("a", "1")]), HOUR).await.unwrap();
    assert_eq!(
        backend.load(&key).await.unwrap(),
        Some(state(&[("a", "1")]))
    );
    assert_eq!(mode(&existing), 0o750);
    assert_eq!(fs::read(existing.join("keep.txt")).unwrap(), b"mine");

    // A path that is a file is not a folder.
    let file = root.path().join("file");
    fs::write(&file, b"").unwrap();
    let err = FileBackend::open(&file, options()).await.unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("flamingo.session.file"), "{err}");
}

/// Makes a folder unwritable; undoes it on drop. Root ignores permission bits, so as root it
/// marks the folder immutable with `chattr +i` instead.
#[cfg(unix)]
struct Unwritable {
    dir: PathBuf,
    immutable: bool,
}

#[cfg(unix)]
impl Unwritable {
    fn new(dir: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o500)).unwrap();
        let probe = dir.join("probe");
        if fs::write(&probe, b"").is_err() {
            return Unwritable {
                dir: dir.to_owned(),
                immutable: false,
            };
        }
        fs::remove_file(&probe).unwrap();
        let status = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .unwrap_or_else(|err| {
                panic!("running as root needs chattr (apt-get install e2fsprogs): {err}")
            });
        assert!(
            status.success(),
            "chattr +i failed on {}: {status}",
            dir.display()
        );
        Unwritable {
            dir: dir.to_owned(),
            immutable: true,
        }
    }
}

#[cfg(unix)]
impl Drop for Unwritable {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        if self.immutable {
            let _ = Command::new("chattr").arg("-i").arg(&self.dir).status();
        }
        let _ = fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700));
    }
}

#[cfg(unix)]
#[tokio::test]
async fn health_is_down_when_the_folder_is_unwritable_or_gone() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("sessions");
    let backend = FileBackend::open(&dir, options()).await.unwrap();
    assert!(backend.health().await.alive);
    assert!(backend.can_hold_tokens());
    assert_eq!(backend.name(), "file");

    let key = backend.create(state(&[("a", "1")]), HOUR).await.unwrap();
    {
        let _unwritable = Unwritable::new(&dir);
        let status = backend.health().await;
        assert!(!status.alive, "{status:?}");
        assert!(status.details.contains("not writable"), "{status:?}");
        println!("health of an unwritable folder: {}", status.details);
        // Reads still work, and so do writes to an existing session, which append to its
        // file; a new session cannot be created and fails as unavailable.
        assert_eq!(
            backend.load(&key).await.unwrap(),
            Some(state(&[("a", "1")]))
        );
        let saved = backend.save(&key, merge(&[("b", "2")]), HOUR).await;
        assert_eq!(saved.unwrap(), SaveOutcome::Saved);
        let created = backend.create(state(&[("c", "3")]), HOUR).await;
        assert!(
            matches!(created, Err(BackendError::Unavailable(_))),
            "{created:?}"
        );
        assert_eq!(session_keys(&dir), std::slice::from_ref(&key));
    }
    let other = FileBackend::open(&dir, options()).await.unwrap();
    assert_eq!(
        other.load(&key).await.unwrap(),
        Some(state(&[("a", "1"), ("b", "2")]))
    );
    assert!(backend.health().await.alive);

    fs::remove_dir_all(&dir).unwrap();
    let status = backend.health().await;
    assert!(!status.alive, "{status:?}");
    println!("health of a missing folder: {}", status.details);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fsync_the_backend_still_passes_the_conformance_suite() {
    let folder = tempfile::tempdir().unwrap();
    let options = FileOptions {
        sync: false,
        ..options()
    };
    let backend = FileBackend::open(folder.path(), options).await.unwrap();
    flamingo_session::conformance::run(&backend, STORE_LENGTH).await;
}

/// A folder in `/dev/shm` (tmpfs on Linux): the backend runs its I/O on the worker thread there.
#[cfg(target_os = "linux")]
fn in_memory_folder() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    assert!(
        shm.is_dir(),
        "/dev/shm is missing: these tests need the tmpfs that Linux mounts there"
    );
    tempfile::tempdir_in(shm).expect("a folder in /dev/shm")
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_in_memory_runs_on_the_worker_thread_and_passes_the_conformance_suite() {
    let folder = in_memory_folder();
    let options = FileOptions {
        sync: false,
        ..options()
    };
    let backend = FileBackend::open(folder.path(), options).await.unwrap();
    let shown = format!("{backend:?}");
    assert!(shown.contains("in_memory: true"), "{shown}");
    flamingo_session::conformance::run(&backend, STORE_LENGTH).await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_concurrent_merges_of_two_backends_keep_every_key() {
    // The file lock is now taken on the worker threads: two backends (two processes) on one
    // folder must still exclude each other without a lost merge or a stuck worker.
    let folder = in_memory_folder();
    let one = FileBackend::open(folder.path(), options()).await.unwrap();
    let two = FileBackend::open(folder.path(), options()).await.unwrap();
    let key = merge_concurrently(&one, &two, 200).await;
    one.delete(&key).await.unwrap();
    assert_eq!(
        two.save(&key, merge(&[("late", "1")]), HOUR).await.unwrap(),
        SaveOutcome::Gone,
        "a deleted session stays dead"
    );
    assert_eq!(one.load(&key).await.unwrap(), None);
}

#[tokio::test]
async fn a_session_another_backend_changed_or_ended_is_read_again() {
    let folder = tempfile::tempdir().unwrap();
    let one = FileBackend::open(folder.path(), options()).await.unwrap();
    let two = FileBackend::open(folder.path(), options()).await.unwrap();
    let key = one.create(state(&[("n", "1")]), HOUR).await.unwrap();
    // Both remember it now.
    assert_eq!(one.load(&key).await.unwrap(), Some(state(&[("n", "1")])));
    assert_eq!(two.load(&key).await.unwrap(), Some(state(&[("n", "1")])));

    for n in 2..20 {
        let (writer, reader) = if n % 2 == 0 {
            (&two, &one)
        } else {
            (&one, &two)
        };
        let value = n.to_string();
        let saved = writer.save(&key, merge(&[("n", &value)]), HOUR).await;
        assert_eq!(saved.unwrap(), SaveOutcome::Saved);
        assert_eq!(
            reader.load(&key).await.unwrap(),
            Some(state(&[("n", &value)])),
            "the other backend sees write {n}"
        );
    }
    // A replace, then an end through the other backend: the first one's memory of it is void.
    let replace = SessionChange::Replace(state(&[("only", "1")]));
    assert_eq!(
        two.save(&key, replace, HOUR).await.unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(one.load(&key).await.unwrap(), Some(state(&[("only", "1")])));
    two.delete(&key).await.unwrap();
    assert_eq!(one.load(&key).await.unwrap(), None);
    let late = one.save(&key, merge(&[("late", "1")]), HOUR).await;
    assert_eq!(late.unwrap(), SaveOutcome::Gone);
    assert_eq!(one.touch(&key, HOUR).await.unwrap(), SaveOutcome::Gone);
    assert!(!session_file(&one, &key).exists(), "nothing recreated it");
}

#[tokio::test]
async fn a_half_written_record_is_skipped_and_files_stay_short() {
    let folder = tempfile::tempdir().unwrap();
    let backend = FileBackend::open(folder.path(), options()).await.unwrap();
    let key = backend.create(state(&[("n", "0")]), HOUR).await.unwrap();
    let path = session_file(&backend, &key);
    for n in 1..=500 {
        let value = n.to_string();
        let saved = backend.save(&key, merge(&[("n", &value)]), HOUR).await;
        assert_eq!(saved.unwrap(), SaveOutcome::Saved);
    }
    let len = fs::metadata(&path).unwrap().len();
    assert!(len < 16 * 1024, "500 writes left a file of {len} bytes");
    let text = fs::read_to_string(&path).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["state"]["n"], 500,
        "the last line is the newest record"
    );

    // A writer killed in the middle of an append leaves part of a record after the last line.
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"\n{\"v\":2,\"expires\":99999999999999,\"state\":{\"n\":9")
        .unwrap();
    drop(file);
    let other = FileBackend::open(folder.path(), options()).await.unwrap();
    assert_eq!(
        other.load(&key).await.unwrap(),
        Some(state(&[("n", "500")]))
    );
    // The next write lands on a line of its own, after the broken one.
    let saved = backend.save(&key, merge(&[("n", "501")]), HOUR).await;
    assert_eq!(saved.unwrap(), SaveOutcome::Saved);
    let fresh = FileBackend::open(folder.path(), options()).await.unwrap();
    assert_eq!(
        fresh.load(&key).await.unwrap(),
        Some(state(&[("n", "501")]))
    );
}

#[tokio::test]
async fn a_file_of_format_version_1_is_read_and_written() {
    let folder = tempfile::tempdir().unwrap();
    let backend = FileBackend::open(folder.path(), options()).await.unwrap();
    let key = SessionId::generate();
    let path = session_file(&backend, &key);
    // What the previous version wrote: one object, no line break.
    fs::write(
        &path,
        r#"{"v":1,"expires":99999999999999,"state":{"n":{"t":"u64","v":3}},"text":{"t":"x"}}"#,
    )
    .unwrap();
    let old = state(&[("n", r#"{"t":"u64","v":3}"#), ("t", "x")]);
    assert_eq!(backend.load(&key).await.unwrap(), Some(old));
    let saved = backend.save(&key, merge(&[("m", "1")]), HOUR).await;
    assert_eq!(saved.unwrap(), SaveOutcome::Saved);
    let other = FileBackend::open(folder.path(), options()).await.unwrap();
    let new = state(&[("n", r#"{"t":"u64","v":3}"#), ("t", "x"), ("m", "1")]);
    assert_eq!(other.load(&key).await.unwrap(), Some(new));
}
