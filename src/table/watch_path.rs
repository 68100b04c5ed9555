//! Which names decide what the watched path points to: the path resolved one component at a
//! time, every symlink on the way recorded with the directory it sits in, down to the real file
//! or the first name that is missing. [`crate::table::watch`] watches those directories and
//! re-resolves when an event touches one of those names.
//!
//! Apart from the follower because it is a pure function of the file system at one moment: it
//! holds no watch and no timer, and is tested on its own.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

/// Most symlinks followed while resolving the path (as the kernel's `ELOOP` limit).
const MAX_LINKS: usize = 40;

/// `path` made absolute against the working directory (not resolved: links are followed by
/// [`resolve`]).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    match path.is_absolute() {
        true => path.to_path_buf(),
        false => std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// The chain of names that decide what the path points to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Chain {
    /// Each symlink met, as (real directory, name), then the real file, or the first name that
    /// is missing.
    pub(crate) links: Vec<(PathBuf, OsString)>,
    /// Whether the path resolves to an existing file that is not a symlink.
    pub(crate) complete: bool,
}

impl Chain {
    pub(crate) fn dirs(&self) -> impl Iterator<Item = &Path> {
        let mut seen = HashSet::new();
        self.links.iter().map(|(d, _)| d.as_path()).filter(move |d| seen.insert(*d))
    }

    /// The role of `dir`/`name` in the chain, if it has one.
    pub(crate) fn role(&self, dir: &Path, name: &OsStr) -> Option<Role> {
        let i = self.links.iter().position(|(d, n)| d == dir && n == name)?;
        Some(match i + 1 == self.links.len() && self.complete {
            true => Role::File,
            false => Role::Link,
        })
    }

    /// The real file, when the chain is complete.
    pub(crate) fn file(&self) -> Option<PathBuf> {
        let (d, n) = self.links.last()?;
        self.complete.then(|| d.join(n))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A symlink on the way, or the missing name where resolution stopped.
    Link,
    /// The real services file.
    File,
}

/// Resolves `path` (absolute) one component at a time, recording every symlink on the way.
pub(crate) fn resolve(path: &Path) -> Chain {
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
