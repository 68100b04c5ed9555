//! `--watch`: reload when the services file changes on disk.
//!
//! The watcher follows the *path*, whatever it points to now:
//!
//! - **Every link of the chain is watched.** The path is resolved one component at a time; each
//!   symlink met on the way (`current -> rel2`, a ConfigMap's `services.toml -> ..data/...` and
//!   `..data -> ..2026_01`) is a *link* whose directory is watched for that name, and so is the
//!   real file's directory. Any event on a link re-resolves the chain and moves the watches, so
//!   a release-style `mv -T tmp current`, a `..data` swap or a symlink into another directory
//!   all reload. A directory that is removed (or a link that points nowhere yet) leaves the
//!   chain *incomplete*: the deepest directory that still exists is watched for the missing
//!   name, and the path is also polled every [`POLL`] until it resolves again.
//! - **Never half a file.** Writes in place are not loaded until the writer closes the file
//!   (inotify's close-after-write); renames into place and symlink swaps are complete by
//!   construction. Before loading, keyrouter waits [`SETTLE`], takes in the events of that
//!   interval, and loads only if no write has started and the file (the same inode) did not
//!   change meanwhile; another file renamed into place is fine, so a file replaced every few
//!   milliseconds is still loaded. A file whose writing was not seen (it appeared while the
//!   watch was being re-attached) is loaded once it has been unchanged for [`QUIET_AGE`].
//! - **Only the services file counts.** Events for other names in the watched directories (a
//!   heartbeat file, keyrouter's own log file) are ignored, and nothing is logged per event, so
//!   a log file beside the services file cannot cause a loop. Bursts are debounced
//!   ([`DEBOUNCE`]), but a pending change is loaded at most [`MAX_WAIT`] after its first event.
//!
//! Reloads go through [`crate::table::reload`] with [`When::IfChanged`]: a bad file keeps the old
//! table; a file that gives the table already served changes nothing but counts as a
//! successful reload.
//!
//! One file on purpose: resolving the path, placing the watches, settling and debouncing are one
//! state machine over the same events, and splitting it would spread that state across modules.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::table::reload::{reload_and_log, When};
use crate::table::state::AppState;

/// Quiet time after the last event before a change is loaded.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// Longest a pending change waits for quiet, counted from its first event.
pub const MAX_WAIT: Duration = Duration::from_millis(800);
/// Before a load, the file must not be written to across this interval.
pub const SETTLE: Duration = Duration::from_millis(50);
/// How often an incomplete chain (a directory or link missing) is resolved again.
pub const POLL: Duration = Duration::from_millis(500);
/// How often a complete chain is checked against the watches (a safety net for lost events).
pub const CHECK: Duration = Duration::from_secs(5);
/// A file whose writing was not seen is loaded only once it has been unchanged this long.
pub const QUIET_AGE: Duration = Duration::from_secs(1);
/// Most symlinks followed while resolving the path (as the kernel's `ELOOP` limit).
const MAX_LINKS: usize = 40;

/// Stops the watcher when dropped.
pub struct WatchHandle {
    tx: Sender<Msg>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchHandle")
    }
}

enum Msg {
    Event(notify::Result<Event>),
    Stop,
}

/// Starts watching the services file of `state`; stops when the handle is dropped.
pub fn spawn(state: Arc<AppState>) -> notify::Result<WatchHandle> {
    let path = absolute(state.services_path());
    let (tx, rx) = mpsc::channel();
    let events = tx.clone();
    let watcher = notify::recommended_watcher(move |event| {
        let _ = events.send(Msg::Event(event));
    })?;
    let mut w = Follower::new(path, watcher);
    w.reattach()?;
    if !w.chain.complete {
        // At startup the file was just loaded: a missing link now is a race we cannot follow
        // yet, so say so and poll.
        tracing::warn!("{}: cannot resolve the path to watch yet; polling", w.path.display());
    }
    w.loaded = identity(&w.path);
    tracing::info!(
        "watching {} for changes to {}",
        w.watched.keys().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
        w.path.display()
    );
    std::thread::Builder::new().name("keyrouter-watch".into()).spawn(move || w.run(&state, &rx))?;
    Ok(WatchHandle { tx })
}

/// `path` made absolute against the working directory (not resolved: links are followed by
/// [`resolve`]).
fn absolute(path: &Path) -> PathBuf {
    match path.is_absolute() {
        true => path.to_path_buf(),
        false => std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// The chain of names that decide what the path points to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Chain {
    /// Each symlink met, as (real directory, name), then the real file, or the first name that
    /// is missing.
    links: Vec<(PathBuf, OsString)>,
    /// Whether the path resolves to an existing file that is not a symlink.
    complete: bool,
}

impl Chain {
    fn dirs(&self) -> impl Iterator<Item = &Path> {
        let mut seen = HashSet::new();
        self.links.iter().map(|(d, _)| d.as_path()).filter(move |d| seen.insert(*d))
    }

    /// The role of `dir`/`name` in the chain, if it has one.
    fn role(&self, dir: &Path, name: &std::ffi::OsStr) -> Option<Role> {
        let i = self.links.iter().position(|(d, n)| d == dir && n == name)?;
        Some(match i + 1 == self.links.len() && self.complete {
            true => Role::File,
            false => Role::Link,
        })
    }

    /// The real file, when the chain is complete.
    fn file(&self) -> Option<PathBuf> {
        let (d, n) = self.links.last()?;
        self.complete.then(|| d.join(n))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A symlink on the way, or the missing name where resolution stopped.
    Link,
    /// The real services file.
    File,
}

/// Resolves `path` (absolute) one component at a time, recording every symlink on the way.
fn resolve(path: &Path) -> Chain {
    let mut chain = Chain::default();
    let mut todo: VecDeque<OsString> = VecDeque::new();
    let mut cur = PathBuf::from("/");
    push_front(&mut todo, path, &mut cur);
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            cur.pop();
            continue;
        }
        let candidate = cur.join(&name);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                chain.links.push((cur.clone(), name));
                links += 1;
                match std::fs::read_link(&candidate) {
                    Ok(target) if links <= MAX_LINKS => push_front(&mut todo, &target, &mut cur),
                    _ => return chain,
                }
            }
            Ok(m) => {
                if todo.is_empty() {
                    chain.links.push((cur.clone(), name));
                    chain.complete = !m.is_dir();
                    return chain;
                }
                cur = candidate;
            }
            Err(_) => {
                // Watch the deepest existing directory for the missing name.
                chain.links.push((cur.clone(), name));
                return chain;
            }
        }
    }
    chain
}

/// Puts the components of `target` in front of `todo`; an absolute target restarts at `/`.
fn push_front(todo: &mut VecDeque<OsString>, target: &Path, cur: &mut PathBuf) {
    let mut names = Vec::new();
    for c in target.components() {
        match c {
            Component::RootDir => {
                *cur = PathBuf::from("/");
                names.clear();
            }
            Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => names.push(OsString::from("..")),
            Component::Normal(n) => names.push(n.to_os_string()),
        }
    }
    for n in names.into_iter().rev() {
        todo.push_front(n);
    }
}

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

/// The identity of what `path` points to now.
fn identity(path: &Path) -> Option<Identity> {
    let m = std::fs::metadata(path).ok()?;
    Some(Identity {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    })
}

/// How long ago `path`'s content last changed.
fn age(path: &Path) -> Duration {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or(Duration::ZERO)
}

/// A change waiting to be loaded.
#[derive(Debug, Clone, Copy)]
struct Pending {
    first: Instant,
    last: Instant,
    /// Whether the writer was seen finishing (close after write, rename, link swap); if not,
    /// the file must have been quiet for [`QUIET_AGE`].
    seen: bool,
}

/// The watcher's state, owned by its thread.
struct Follower {
    path: PathBuf,
    watcher: RecommendedWatcher,
    chain: Chain,
    /// Watched directories and the (device, inode) each watch is on.
    watched: HashMap<PathBuf, (u64, u64)>,
    pending: Option<Pending>,
    /// A write to the file was seen and its close was not: never load in between.
    writing: bool,
    /// The identity of the file at the last load (or attempt).
    loaded: Option<Identity>,
    /// Whether the "file is gone" warning was given for the current absence.
    warned_missing: bool,
    /// Some directory of the chain could not be watched.
    degraded: bool,
    next_check: Instant,
}

impl Follower {
    fn new(path: PathBuf, watcher: RecommendedWatcher) -> Self {
        Follower {
            path,
            watcher,
            chain: Chain::default(),
            watched: HashMap::new(),
            pending: None,
            writing: false,
            loaded: None,
            warned_missing: false,
            degraded: false,
            next_check: Instant::now() + CHECK,
        }
    }

    fn run(mut self, state: &AppState, rx: &mpsc::Receiver<Msg>) {
        loop {
            let now = Instant::now();
            let timeout = self.next_wakeup().saturating_duration_since(now);
            match rx.recv_timeout(timeout) {
                Ok(Msg::Event(event)) => self.on_event(event),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if now >= self.next_check {
                self.periodic();
            }
            if self.pending.is_some_and(|p| self.due(p, now)) && !self.load(state, rx) {
                return;
            }
        }
    }

    fn next_wakeup(&self) -> Instant {
        let mut at = self.next_check;
        if let Some(p) = self.pending {
            let due = (p.last + DEBOUNCE).min(p.first + MAX_WAIT);
            // A change held back (a write in progress, a file too young) is looked at again.
            at = at.min(due.max(Instant::now() + Duration::from_millis(20)));
        }
        at
    }

    fn due(&self, p: Pending, now: Instant) -> bool {
        now >= p.last + DEBOUNCE || now >= p.first + MAX_WAIT
    }

    fn mark(&mut self, seen: bool) {
        let now = Instant::now();
        self.pending = Some(match self.pending {
            Some(p) => Pending { first: p.first, last: now, seen: p.seen || seen },
            None => Pending { first: now, last: now, seen },
        });
    }

    /// Resolves the chain again and moves the watches to it, until the chain is the same
    /// before and after attaching (a few rounds at most). Returns whether the chain changed.
    fn reattach(&mut self) -> notify::Result<bool> {
        let before = self.chain.clone();
        let mut result = Ok(());
        for _ in 0..4 {
            let chain = resolve(&self.path);
            result = self.watch_dirs(&chain);
            let stable = resolve(&self.path) == chain;
            self.chain = chain;
            if stable {
                break;
            }
        }
        self.degraded = result.is_err() || !self.chain.complete;
        self.next_check = Instant::now() + if self.degraded { POLL } else { CHECK };
        if self.chain.file() != before.file() {
            // Another file: whatever was being written there is not ours to wait for.
            self.writing = false;
        }
        result.map(|()| self.chain != before)
    }

    /// Watches exactly the directories of `chain`, each on its current inode.
    fn watch_dirs(&mut self, chain: &Chain) -> notify::Result<()> {
        let wanted: Vec<PathBuf> = chain.dirs().map(Path::to_path_buf).collect();
        let stale: Vec<PathBuf> = self.watched.keys().filter(|d| !wanted.contains(d)).cloned().collect();
        for d in stale {
            self.watched.remove(&d);
            // The directory may be gone already, and its watch with it.
            let _ = self.watcher.unwatch(&d);
        }
        let mut result = Ok(());
        for d in wanted {
            let Ok(m) = std::fs::metadata(&d) else {
                if self.watched.remove(&d).is_some() {
                    let _ = self.watcher.unwatch(&d);
                }
                continue;
            };
            let id = (m.dev(), m.ino());
            match self.watched.get(&d) {
                Some(&old) if old == id => continue,
                Some(_) => {
                    let _ = self.watcher.unwatch(&d);
                }
                None => {}
            }
            match self.watcher.watch(&d, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(d, id);
                }
                Err(e) => {
                    self.watched.remove(&d);
                    result = Err(e);
                }
            }
        }
        result
    }

    fn on_event(&mut self, event: notify::Result<Event>) {
        let event = match event {
            Ok(e) if e.need_rescan() => return self.rescan(),
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("watching {}: {e}; resolving the path again", self.path.display());
                return self.rescan();
            }
        };
        // Whether the chain must be resolved again, and whether what it points to now is known
        // to be finished (renamed into place, or a symlink swapped).
        let mut relink = false;
        let mut finished = false;
        let mut created = false;
        for p in &event.paths {
            if self.watched.contains_key(p) {
                // The directory itself was removed or moved.
                relink |= matches!(event.kind, EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)));
                continue;
            }
            let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else { continue };
            let Some(role) = self.chain.role(dir, name) else { continue };
            let last = self.chain.links.last().is_some_and(|(d, n)| d == dir && n == name);
            match event.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) if role == Role::File => {
                    self.writing = false;
                    self.mark(true);
                }
                // A name that was missing got written: follow the chain to it.
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                    relink = true;
                    finished = true;
                }
                EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) if role == Role::File => self.writing = true,
                EventKind::Create(_) => match std::fs::symlink_metadata(p) {
                    // A new file that is being written: its close will follow. (A hard link to
                    // a finished file has no close to wait for.)
                    Ok(m) if last && m.file_type().is_file() && m.nlink() == 1 => {
                        relink |= role == Role::Link;
                        created = true;
                    }
                    Ok(m) => {
                        relink = true;
                        finished |= m.file_type().is_symlink() || m.file_type().is_file();
                    }
                    Err(_) => relink = true,
                },
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {}
                EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                    if last {
                        // A new inode: any write seen was to the one replaced.
                        self.writing = false;
                    }
                    relink = true;
                    finished = true;
                }
                EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => {
                    if last {
                        self.writing = false;
                    }
                    relink = true;
                }
                _ => {}
            }
        }
        if relink {
            self.relink(finished && !created);
        }
        if created {
            self.writing = true;
        }
    }

    /// Something on the chain changed: follow it, and load what it points to now.
    fn relink(&mut self, finished: bool) {
        let changed = match self.reattach() {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!("watching {}: {e}; polling every {POLL:?}", self.path.display());
                true
            }
        };
        self.note_presence();
        if !self.chain.complete {
            self.pending = None;
        } else if finished || changed {
            // Renamed into place or a swapped link: finished. Otherwise (a directory came back)
            // the file was written where we could not see it: load it once it is quiet.
            self.mark(finished);
        }
    }

    /// Events were lost: resolve again and load if the file is not what was loaded.
    fn rescan(&mut self) {
        if let Err(e) = self.reattach() {
            tracing::warn!("watching {}: {e}; polling every {POLL:?}", self.path.display());
        }
        self.note_presence();
        if self.chain.complete && identity(&self.path) != self.loaded {
            self.mark(false);
        }
    }

    /// The periodic check: on an incomplete chain every [`POLL`], else every [`CHECK`].
    fn periodic(&mut self) {
        let before = self.chain.clone();
        let watched = self.watched.clone();
        if let Err(e) = self.reattach() {
            tracing::debug!("watching {}: {e}", self.path.display());
        }
        let moved = self.chain != before || self.watched != watched;
        self.note_presence();
        // The file came back, or changed without an event we could see (a watch re-attached
        // after the writer finished): load it once it is quiet.
        if self.chain.complete && (moved || identity(&self.path) != self.loaded) && self.pending.is_none() {
            self.mark(false);
        }
    }

    /// Logs once when the file goes missing, once when it is back.
    fn note_presence(&mut self) {
        match (self.chain.complete, self.warned_missing) {
            (false, false) => {
                tracing::warn!(
                    "{} is gone; still serving the previous table; polling every {POLL:?} until it is back",
                    self.path.display()
                );
                self.warned_missing = true;
            }
            (true, true) => {
                tracing::info!("{} is back; watching it again", self.path.display());
                self.warned_missing = false;
            }
            _ => {}
        }
    }

    /// Loads a pending change once the file is finished and stable.
    /// Returns false if the watcher was stopped meanwhile.
    fn load(&mut self, state: &AppState, rx: &mpsc::Receiver<Msg>) -> bool {
        let Some(p) = self.pending else { return true };
        if !self.chain.complete {
            self.pending = None;
            return true;
        }
        if !p.seen && age(&self.path) < QUIET_AGE {
            // Written while we could not see it: wait until it has been quiet long enough.
            self.pending = Some(Pending { last: Instant::now(), first: Instant::now(), ..p });
            return true;
        }
        let before = identity(&self.path);
        std::thread::sleep(SETTLE);
        // What happened during the settle interval: a writer that started since must be seen.
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Event(e) => self.on_event(e),
                Msg::Stop => return false,
            }
        }
        if !self.chain.complete || self.writing {
            // Gone again, or written in place and not closed yet (its close marks it again).
            self.pending = None;
            return true;
        }
        let after = identity(&self.path);
        // The same file changed: a write is under way. (Another inode is a file renamed into
        // place, complete by construction: renames every few milliseconds must not starve.)
        let same_inode = before.zip(after).is_some_and(|(b, a)| (b.dev, b.ino) == (a.dev, a.ino));
        if after.is_none() || (same_inode && before != after) {
            self.pending = Some(Pending { last: Instant::now(), ..p });
            return true;
        }
        self.pending = None;
        reload_and_log(state, "file change", When::IfChanged);
        self.loaded = after;
        if identity(&self.path) != after {
            // Changed while being read: read it again once it settles.
            self.mark(false);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolve_records_every_link_and_the_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("..2026_01")).unwrap();
        std::fs::write(root.join("..2026_01/services.toml"), "").unwrap();
        symlink("..2026_01", root.join("..data")).unwrap();
        symlink("..data/services.toml", root.join("services.toml")).unwrap();
        let chain = resolve(&root.join("services.toml"));
        assert!(chain.complete);
        let links: Vec<(PathBuf, OsString)> = vec![
            (root.clone(), "services.toml".into()),
            (root.clone(), "..data".into()),
            (root.join("..2026_01"), "services.toml".into()),
        ];
        assert_eq!(chain.links, links);
        assert_eq!(chain.role(&root, "..data".as_ref()), Some(Role::Link));
        assert_eq!(chain.role(&root.join("..2026_01"), "services.toml".as_ref()), Some(Role::File));
        assert_eq!(chain.role(&root, "other".as_ref()), None);
        assert_eq!(chain.dirs().count(), 2);
    }

    #[test]
    fn resolve_stops_at_the_first_missing_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let chain = resolve(&root.join("gone/services.toml"));
        assert!(!chain.complete);
        assert_eq!(chain.links, vec![(root.clone(), OsString::from("gone"))]);
        // An absolute link into another directory, and a loop.
        std::fs::create_dir(root.join("other")).unwrap();
        std::fs::write(root.join("other/real.toml"), "").unwrap();
        symlink(root.join("other/real.toml"), root.join("services.toml")).unwrap();
        let chain = resolve(&root.join("services.toml"));
        assert!(chain.complete);
        assert_eq!(chain.links.last().unwrap(), &(root.join("other"), OsString::from("real.toml")));
        symlink("loop", root.join("loop")).unwrap();
        assert!(!resolve(&root.join("loop")).complete);
    }
}
