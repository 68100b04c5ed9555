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
//! The pieces: [`crate::table::watch_path`] resolves the path into the chain of names to watch;
//! [`classify`] says, for one event on one name, what it means (a pure function, tested per
//! inotify sequence); the follower applies that to its state, places the watches, settles,
//! debounces and loads.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::table::reload::{reload_and_log, When};
use crate::table::state::AppState;
use crate::table::watch_path::{absolute, resolve, Chain, Role};

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

/// What an event was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    /// A watched directory itself.
    Dir,
    /// A name of the chain: its role, whether it is the last name (the file, or the missing
    /// name where resolution stopped), and what is there now (asked on creation only).
    Name { role: Role, last: bool, found: Found },
}

/// What a name of the chain is on disk, as far as a creation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Missing,
    /// A regular file with one link: a new file whose writing has just begun.
    NewFile,
    /// A regular file with more links: a hard link to a finished file (no close to wait for).
    LinkedFile,
    Symlink,
    /// A directory or anything else.
    Other,
}

impl Found {
    fn of(path: &Path) -> Found {
        match std::fs::symlink_metadata(path) {
            Err(_) => Found::Missing,
            Ok(m) if m.file_type().is_symlink() => Found::Symlink,
            Ok(m) if m.file_type().is_file() && m.nlink() == 1 => Found::NewFile,
            Ok(m) if m.file_type().is_file() => Found::LinkedFile,
            Ok(_) => Found::Other,
        }
    }
}

/// What an event on `path` is on: a watched directory, a name of `chain`, or (`None`) nothing
/// the follower cares about, such as another file in a watched directory. `found` is asked only
/// for a creation.
fn locate(
    chain: &Chain,
    watched_dir: bool,
    path: &Path,
    kind: &EventKind,
    found: impl FnOnce(&Path) -> Found,
) -> Option<On> {
    if watched_dir {
        return Some(On::Dir);
    }
    let (dir, name) = (path.parent()?, path.file_name()?);
    let role = chain.role(dir, name)?;
    let last = chain.links.last().is_some_and(|(d, n)| d == dir && n == name);
    let found = match kind {
        EventKind::Create(_) => found(path),
        _ => Found::Missing,
    };
    Some(On::Name { role, last, found })
}

/// What one event on one name means for the follower.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Reaction {
    /// The chain must be resolved again (and the watches moved).
    relink: bool,
    /// What the chain points to now is known to be finished (renamed into place, a symlink
    /// swapped, a missing name written).
    finished: bool,
    /// The file was written and closed: a finished change to load.
    closed: bool,
    /// A new file is being written at the end of the chain: its close will follow.
    created: bool,
    /// A write to the file started (`Some(true)`) or whatever was being written is no longer
    /// the file (`Some(false)`: closed, or replaced by another inode).
    writing: Option<bool>,
}

/// What `kind` on `on` means. Pure: the follower applies it to its state.
fn classify(kind: &EventKind, on: On) -> Reaction {
    let none = Reaction::default();
    let On::Name { role, last, found } = on else {
        // The directory itself was removed or moved.
        let relink = matches!(kind, EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)));
        return Reaction { relink, ..none };
    };
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) if role == Role::File => {
            Reaction { closed: true, writing: Some(false), ..none }
        }
        // A name that was missing got written: follow the chain to it.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Reaction { relink: true, finished: true, ..none },
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) if role == Role::File => {
            Reaction { writing: Some(true), ..none }
        }
        EventKind::Create(_) => match found {
            Found::NewFile if last => Reaction { relink: role == Role::Link, created: true, ..none },
            Found::Missing => Reaction { relink: true, ..none },
            Found::Other => Reaction { relink: true, ..none },
            Found::NewFile | Found::LinkedFile | Found::Symlink => Reaction { relink: true, finished: true, ..none },
        },
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => none,
        // A new inode: any write seen was to the one replaced.
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            Reaction { relink: true, finished: true, writing: last.then_some(false), ..none }
        }
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => {
            Reaction { relink: true, writing: last.then_some(false), ..none }
        }
        _ => none,
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
        let mut relink = false;
        let mut finished = false;
        let mut created = false;
        for p in &event.paths {
            let Some(on) = locate(&self.chain, self.watched.contains_key(p), p, &event.kind, Found::of) else {
                continue;
            };
            let r = classify(&event.kind, on);
            if let Some(w) = r.writing {
                self.writing = w;
            }
            if r.closed {
                self.mark(true);
            }
            relink |= r.relink;
            finished |= r.finished;
            created |= r.created;
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
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind};
    use std::ffi::OsString;

    const CLOSE: EventKind = EventKind::Access(AccessKind::Close(AccessMode::Write));
    const OPEN: EventKind = EventKind::Access(AccessKind::Open(AccessMode::Any));
    const DATA: EventKind = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    const CHMOD: EventKind = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
    const CREATE: EventKind = EventKind::Create(CreateKind::File);
    const MKDIR: EventKind = EventKind::Create(CreateKind::Folder);
    const REMOVE: EventKind = EventKind::Remove(RemoveKind::File);
    const RMDIR: EventKind = EventKind::Remove(RemoveKind::Folder);
    const FROM: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::From));
    const TO: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::To));
    const BOTH: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::Both));

    const NOTHING: Reaction = Reaction { relink: false, finished: false, closed: false, created: false, writing: None };
    /// The chain moved and what it points to now is finished: load it.
    const REPLACED: Reaction = Reaction { relink: true, finished: true, writing: Some(false), ..NOTHING };
    const GONE: Reaction = Reaction { relink: true, writing: Some(false), ..NOTHING };

    fn chain(links: &[(&str, &str)], complete: bool) -> Chain {
        Chain { links: links.iter().map(|(d, n)| (PathBuf::from(d), OsString::from(n))).collect(), complete }
    }

    /// What the follower would do for each event of `events` (kind, path, what is there now)
    /// on `chain`, whose directories `watched` are watched: `None` for events it ignores.
    fn react(chain: &Chain, watched: &[&str], events: &[(EventKind, &str, Found)]) -> Vec<Option<Reaction>> {
        events
            .iter()
            .map(|(kind, path, found)| {
                let path = Path::new(path);
                let is_dir = watched.iter().any(|w| Path::new(w) == path);
                locate(chain, is_dir, path, kind, |_| *found).map(|on| classify(kind, on))
            })
            .collect()
    }

    #[test]
    fn atomic_rename_over_the_file_as_consul_template_does_is_loaded_as_finished() {
        let c = chain(&[("/srv", "services.toml")], true);
        let tmp = "/srv/.services.toml.tmp123";
        let seen = react(
            &c,
            &["/srv"],
            &[
                (CREATE, tmp, Found::NewFile),
                (DATA, tmp, Found::Missing),
                (CLOSE, tmp, Found::Missing),
                (FROM, tmp, Found::Missing),
                (TO, "/srv/services.toml", Found::Missing),
            ],
        );
        assert_eq!(seen, vec![None, None, None, None, Some(REPLACED)]);
        // The paired event names both paths; neither asks for anything more.
        let both = react(&c, &["/srv"], &[(BOTH, tmp, Found::Missing), (BOTH, "/srv/services.toml", Found::Missing)]);
        assert_eq!(both, vec![None, Some(NOTHING)]);
    }

    #[test]
    fn configmap_data_symlink_swap_follows_the_new_link_as_finished() {
        let c = chain(&[("/cm", "services.toml"), ("/cm", "..data"), ("/cm/..2026_01", "services.toml")], true);
        let seen = react(
            &c,
            &["/cm", "/cm/..2026_01"],
            &[
                (MKDIR, "/cm/..2026_02", Found::Other),
                (CREATE, "/cm/..data_tmp", Found::Symlink),
                (FROM, "/cm/..data_tmp", Found::Missing),
                (TO, "/cm/..data", Found::Missing),
                // The old directory goes: its file, then the directory itself.
                (REMOVE, "/cm/..2026_01/services.toml", Found::Missing),
                (RMDIR, "/cm/..2026_01", Found::Missing),
            ],
        );
        let swapped = Reaction { relink: true, finished: true, ..NOTHING };
        let dir_gone = Reaction { relink: true, ..NOTHING };
        assert_eq!(seen, vec![None, None, None, Some(swapped), Some(GONE), Some(dir_gone)]);
    }

    #[test]
    fn file_removed_then_recreated_waits_for_the_close_of_the_new_file() {
        let present = chain(&[("/srv", "services.toml")], true);
        assert_eq!(react(&present, &["/srv"], &[(REMOVE, "/srv/services.toml", Found::Missing)]), vec![Some(GONE)]);
        // Now the chain stops at the missing name.
        let missing = chain(&[("/srv", "services.toml")], false);
        let seen = react(
            &missing,
            &["/srv"],
            &[
                (CREATE, "/srv/services.toml", Found::NewFile),
                (DATA, "/srv/services.toml", Found::Missing),
                (CLOSE, "/srv/services.toml", Found::Missing),
            ],
        );
        let created = Reaction { relink: true, created: true, ..NOTHING };
        let written = Reaction { relink: true, finished: true, ..NOTHING };
        assert_eq!(seen, vec![Some(created), Some(NOTHING), Some(written)]);
        // A hard link or a symlink created there is finished at once.
        for found in [Found::LinkedFile, Found::Symlink] {
            assert_eq!(react(&missing, &["/srv"], &[(CREATE, "/srv/services.toml", found)]), vec![Some(written)]);
        }
    }

    #[test]
    fn directory_removed_resolves_the_chain_again() {
        let c = chain(&[("/srv/conf", "services.toml")], true);
        let seen = react(
            &c,
            &["/srv/conf"],
            &[(REMOVE, "/srv/conf/services.toml", Found::Missing), (RMDIR, "/srv/conf", Found::Missing)],
        );
        assert_eq!(seen, vec![Some(GONE), Some(Reaction { relink: true, ..NOTHING })]);
        // A directory moved away is the same; a chmod on it is not.
        let moved =
            react(&c, &["/srv/conf"], &[(FROM, "/srv/conf", Found::Missing), (CHMOD, "/srv/conf", Found::Missing)]);
        assert_eq!(moved, vec![Some(Reaction { relink: true, ..NOTHING }), Some(NOTHING)]);
    }

    #[test]
    fn unrelated_file_in_the_directory_is_ignored() {
        let c = chain(&[("/srv", "services.toml")], true);
        let log = "/srv/keyrouter.log";
        let all = [CREATE, OPEN, DATA, CLOSE, CHMOD, FROM, TO, REMOVE];
        let seen = react(&c, &["/srv"], &all.map(|k| (k, log, Found::NewFile)));
        assert!(seen.iter().all(Option::is_none), "{seen:?}");
    }

    #[test]
    fn editor_write_in_place_loads_only_after_the_close() {
        let c = chain(&[("/srv", "services.toml")], true);
        let f = "/srv/services.toml";
        let seen = react(
            &c,
            &["/srv"],
            &[
                (OPEN, f, Found::Missing),
                (DATA, f, Found::Missing),
                (DATA, f, Found::Missing),
                (CLOSE, f, Found::Missing),
            ],
        );
        let writing = Reaction { writing: Some(true), ..NOTHING };
        let closed = Reaction { closed: true, writing: Some(false), ..NOTHING };
        assert_eq!(seen, vec![Some(NOTHING), Some(writing), Some(writing), Some(closed)]);
    }

    #[test]
    fn chmod_only_changes_nothing() {
        let c = chain(&[("/cm", "services.toml"), ("/cm", "..data"), ("/cm/..2026_01", "services.toml")], true);
        let seen = react(
            &c,
            &["/cm", "/cm/..2026_01"],
            &[
                (CHMOD, "/cm/..2026_01/services.toml", Found::Missing),
                (CHMOD, "/cm/..data", Found::Missing),
                (CHMOD, "/cm/..2026_01", Found::Missing),
            ],
        );
        assert_eq!(seen, vec![Some(NOTHING); 3]);
    }
}
