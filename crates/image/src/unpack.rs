//! Unpacking one OCI image layer into its own directory, in overlayfs form.
//!
//! The input is an already-decompressed tar stream. Every entry is written *inside* the
//! destination directory, whatever its name, link target or the symlinks that earlier entries
//! created (the same root-relative semantics as containerd's `archive/tar.go`):
//!
//! - `dest` is opened once; every parent directory is resolved from that fd with `openat2`
//!   and `RESOLVE_IN_ROOT`, so `..`, absolute paths and symlinks (absolute or relative) resolve
//!   as if `dest` were `/`.
//! - The final component is always created or changed with a `*at` call on the resolved parent
//!   fd and never followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `O_EXCL`).
//! - Entry names are cleaned lexically relative to the root first (`../../etc/x` is `etc/x`).
//! - Hard link targets are cleaned and resolved the same way, so they can only name an inode
//!   that is already inside `dest`.
//! - Character and block device entries are skipped: an image never creates device nodes on
//!   the host's filesystem. The only device node created is the overlayfs whiteout (char 0/0).
//!
//! OCI whiteouts become overlayfs whiteouts: `D/.wh..wh..opq` sets `trusted.overlay.opaque=y`
//! on `D`; `D/.wh.NAME` becomes a character device 0/0 at `D/NAME`; other `.wh..wh.*` names are
//! ignored.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Timestamps, Uid,
    XattrFlags,
};
use rustix::io::Errno;
use rustix::time::Timespec;
use tar::EntryType;

/// Prefix of an OCI whiteout file name.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of OCI whiteout metadata names (never unpacked).
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// OCI opaque-directory marker.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The overlayfs xattr that marks a directory opaque.
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// PAX record prefix carrying extended attributes.
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
/// How often `openat2` is retried when the kernel answers `EAGAIN` (a concurrent rename).
const OPENAT2_RETRIES: usize = 32;

/// What one unpack wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    /// Sum of the sizes of the regular files written.
    pub bytes: u64,
    /// Files, directories (including missing parents created), symlinks, hard links, FIFOs and
    /// whiteouts created.
    pub inodes: u64,
}

/// Why an unpack failed. Every variant names the tar entry (as written in the archive) it is
/// about, or for stream-level errors the last entry read before the failure.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// A filesystem operation failed.
    #[error("{path}: {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The tar stream is malformed or ends in the middle of a header.
    #[error("malformed or truncated tar stream after entry {after:?}: {source}")]
    Tar {
        /// The last entry read successfully ("" at the start of the stream).
        after: String,
        #[source]
        source: io::Error,
    },
    /// An entry's header fields (mode, owner, times, PAX records) cannot be parsed.
    #[error("{path}: malformed tar header: {source}")]
    Header {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The stream ended inside an entry's data.
    #[error(
        "{path}: truncated tar stream: entry has {expected} bytes of data, only {got} present"
    )]
    Truncated {
        path: String,
        expected: u64,
        got: u64,
    },
    /// An entry of a type this unpacker does not handle.
    #[error("{path}: unsupported tar entry type {kind}")]
    Unsupported { path: String, kind: String },
    /// An entry that cannot be applied (e.g. a hard link to a directory).
    #[error("{path}: invalid entry: {reason}")]
    Invalid { path: String, reason: &'static str },
    /// Reading the rest of the stream after the end of the archive failed.
    #[error("reading the layer stream after the end of the archive: {source}")]
    Drain {
        #[source]
        source: io::Error,
    },
}

/// Unpacks one layer (a decompressed tar stream) into `dest`, an existing, empty directory,
/// converting OCI whiteouts to overlayfs form. Nothing outside `dest` is ever written,
/// whatever the archive holds. After the end of the archive the reader is read to EOF, so a
/// digest computed by a wrapping reader covers every byte.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let root = rfs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Io {
        path: dest.display().to_string(),
        op: "open layer directory",
        source: e.into(),
    })?;
    let mut unpacker = Unpacker {
        root,
        stats: UnpackStats::default(),
        dir_times: Vec::new(),
        dir_times_index: HashMap::new(),
    };

    let mut archive = tar::Archive::new(reader);
    let mut last = String::new();
    let entries = archive.entries().map_err(|source| UnpackError::Tar {
        after: String::new(),
        source,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| UnpackError::Tar {
            after: last.clone(),
            source,
        })?;
        last = unpacker.entry(&mut entry)?;
    }
    unpacker.apply_dir_times()?;

    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|source| UnpackError::Drain { source })?;
    Ok(unpacker.stats)
}

/// Metadata of one entry, parsed from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

struct Unpacker {
    /// `dest`, opened once.
    root: OwnedFd,
    stats: UnpackStats,
    /// Directory mtimes, applied after everything else (creating children changes them).
    dir_times: Vec<(Vec<Vec<u8>>, Timespec)>,
    dir_times_index: HashMap<Vec<Vec<u8>>, usize>,
}

fn io_err(path: &str, op: &'static str, e: impl Into<io::Error>) -> UnpackError {
    UnpackError::Io {
        path: path.to_owned(),
        op,
        source: e.into(),
    }
}

impl Unpacker {
    /// Applies one entry; returns its name for error context.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<String, UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8_lossy(&raw).into_owned();
        let header = entry.header();
        let mut kind = header.entry_type();
        // Legacy (pre-POSIX) archives mark directories with a trailing slash on a `\0` entry.
        if header.as_old().linkflag[0] == 0 && raw.ends_with(b"/") {
            kind = EntryType::Directory;
        }
        if kind == EntryType::XGlobalHeader {
            tracing::debug!(path = %path, "ignoring PAX global extended header");
            return Ok(path);
        }

        let comps = clean_components(&raw);
        let Some((name, parent)) = comps.split_last() else {
            tracing::debug!(path = %path, "ignoring entry that resolves to the layer root");
            return Ok(path);
        };
        let meta = parse_meta(entry, &path)?;

        if name.starts_with(WHITEOUT_PREFIX) {
            self.whiteout(parent, name, &meta, &path)?;
            return Ok(path);
        }

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(parent, name, entry, &meta, &path)?
            }
            EntryType::Directory => self.directory(&comps, &meta, &path)?,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.symlink(parent, name, &target, &meta, &path)?
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.hardlink(parent, name, &target, &path)?
            }
            EntryType::Fifo => self.fifo(parent, name, &meta, &path)?,
            EntryType::Char | EntryType::Block => {
                tracing::warn!(path = %path, "skipping device node entry in image layer");
            }
            other => {
                return Err(UnpackError::Unsupported {
                    path,
                    kind: format!("{:?}", other.as_byte() as char),
                })
            }
        }
        Ok(path)
    }

    /// `openat2(root, path, flags, IN_ROOT | NO_MAGICLINKS)`, retried on `EAGAIN`.
    fn open_in_root(&self, comps: &[Vec<u8>], oflags: OFlags) -> Result<OwnedFd, Errno> {
        let path = join_components(comps);
        let mut tries = 0;
        loop {
            match rfs::openat2(
                &self.root,
                path.as_slice(),
                oflags | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(e) if e == Errno::AGAIN && tries < OPENAT2_RETRIES => tries += 1,
                r => return r,
            }
        }
    }

    /// Resolves directory `comps` inside the root (an `O_PATH` fd). With `create`, missing
    /// directories are created (0755) one component at a time, each on the fd of its resolved
    /// parent.
    fn resolve_dir(&mut self, comps: &[Vec<u8>], create: bool) -> Result<OwnedFd, Errno> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        match self.open_in_root(comps, flags) {
            Err(e) if e == Errno::NOENT && create => {}
            r => return r,
        }
        let mut fd = self.open_in_root(&[], flags)?;
        for i in 0..comps.len() {
            let prefix = &comps[..=i];
            fd = match self.open_in_root(prefix, flags) {
                Ok(next) => next,
                Err(e) if e == Errno::NOENT => {
                    // `fd` is the resolved `comps[..i]`, so `comps[i]` is what is missing (or a
                    // dangling symlink, which mkdirat does not follow: EEXIST, then ENOENT).
                    match make_dir(fd.as_fd(), &comps[i], 0o755) {
                        Ok(_) => self.stats.inodes += 1,
                        Err(e) if e == Errno::EXIST => {}
                        Err(e) => return Err(e),
                    }
                    self.open_in_root(prefix, flags)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(fd)
    }

    fn parent_fd(&mut self, parent: &[Vec<u8>], path: &str) -> Result<OwnedFd, UnpackError> {
        self.resolve_dir(parent, true)
            .map_err(|e| io_err(path, "resolve parent directory", e))
    }

    fn regular<R: Read>(
        &mut self,
        parent: &[Vec<u8>],
        name: &[u8],
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        let dir = self.parent_fd(parent, path)?;
        clear_existing(dir.as_fd(), name, false).map_err(|e| io_err(path, "replace", e))?;
        let fd = rfs::openat(
            &dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err(path, "create file", e))?;
        self.stats.inodes += 1;
        let mut file = File::from(fd);
        let expected = entry.size();
        let got = io::copy(entry, &mut file).map_err(|e| io_err(path, "copy file data", e))?;
        if got != expected {
            return Err(UnpackError::Truncated {
                path: path.to_owned(),
                expected,
                got,
            });
        }
        self.stats.bytes += got;
        apply_meta(file.as_fd(), meta, true, path)
    }

    fn directory(&mut self, comps: &[Vec<u8>], meta: &Meta, path: &str) -> Result<(), UnpackError> {
        let (name, parent) = comps.split_last().expect("non-empty");
        let dir = self.parent_fd(parent, path)?;
        let kept =
            clear_existing(dir.as_fd(), name, true).map_err(|e| io_err(path, "replace", e))?;
        let fd = if kept {
            rfs::openat(
                &dir,
                name.as_slice(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(path, "open directory", e))?
        } else {
            let fd = make_dir(dir.as_fd(), name, 0o700)
                .map_err(|e| io_err(path, "create directory", e))?;
            self.stats.inodes += 1;
            fd
        };
        apply_meta(fd.as_fd(), meta, false, path)?;
        match self.dir_times_index.get(comps) {
            Some(&i) => self.dir_times[i].1 = meta.mtime,
            None => {
                self.dir_times_index
                    .insert(comps.to_vec(), self.dir_times.len());
                self.dir_times.push((comps.to_vec(), meta.mtime));
            }
        }
        Ok(())
    }

    fn symlink(
        &mut self,
        parent: &[Vec<u8>],
        name: &[u8],
        target: &[u8],
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        if target.is_empty() {
            return Err(UnpackError::Invalid {
                path: path.to_owned(),
                reason: "symlink with an empty target",
            });
        }
        let dir = self.parent_fd(parent, path)?;
        clear_existing(dir.as_fd(), name, false).map_err(|e| io_err(path, "replace", e))?;
        rfs::symlinkat(target, &dir, name).map_err(|e| io_err(path, "create symlink", e))?;
        self.stats.inodes += 1;
        rfs::chownat(
            &dir,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err(path, "chown symlink", e))?;
        if !meta.xattrs.is_empty() {
            tracing::debug!(path = %path, "not applying xattrs to a symlink");
        }
        rfs::utimensat(&dir, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_err(path, "set symlink times", e))
    }

    fn hardlink(
        &mut self,
        parent: &[Vec<u8>],
        name: &[u8],
        target: &[u8],
        path: &str,
    ) -> Result<(), UnpackError> {
        let target_comps = clean_components(target);
        let Some((target_name, target_parent)) = target_comps.split_last() else {
            return Err(UnpackError::Invalid {
                path: path.to_owned(),
                reason: "hard link to the layer root",
            });
        };
        let target_dir = self
            .resolve_dir(target_parent, false)
            .map_err(|e| io_err(path, "resolve hard link target", e))?;
        let target_stat = rfs::statat(
            &target_dir,
            target_name.as_slice(),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err(path, "resolve hard link target", e))?;
        if FileType::from_raw_mode(target_stat.st_mode) == FileType::Directory {
            return Err(UnpackError::Invalid {
                path: path.to_owned(),
                reason: "hard link to a directory",
            });
        }
        let dir = self.parent_fd(parent, path)?;
        if let Ok(st) = rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            if st.st_dev == target_stat.st_dev && st.st_ino == target_stat.st_ino {
                return Ok(()); // already this inode (e.g. a link to itself)
            }
        }
        clear_existing(dir.as_fd(), name, false).map_err(|e| io_err(path, "replace", e))?;
        // Flags 0: a symlink target is linked itself, never followed.
        rfs::linkat(
            &target_dir,
            target_name.as_slice(),
            &dir,
            name,
            AtFlags::empty(),
        )
        .map_err(|e| io_err(path, "create hard link", e))?;
        self.stats.inodes += 1;
        Ok(())
    }

    fn fifo(
        &mut self,
        parent: &[Vec<u8>],
        name: &[u8],
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        let dir = self.parent_fd(parent, path)?;
        clear_existing(dir.as_fd(), name, false).map_err(|e| io_err(path, "replace", e))?;
        rfs::mknodat(&dir, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
            .map_err(|e| io_err(path, "create fifo", e))?;
        self.stats.inodes += 1;
        let fd = rfs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(path, "open fifo", e))?;
        apply_meta(fd.as_fd(), meta, true, path)
    }

    fn whiteout(
        &mut self,
        parent: &[Vec<u8>],
        name: &[u8],
        meta: &Meta,
        path: &str,
    ) -> Result<(), UnpackError> {
        if name == WHITEOUT_OPAQUE {
            let dir = self.parent_fd(parent, path)?;
            let fd = rfs::openat(
                &dir,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(path, "open opaque directory", e))?;
            return rfs::fsetxattr(&fd, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| io_err(path, "set trusted.overlay.opaque", e));
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            tracing::debug!(path = %path, "ignoring whiteout metadata entry");
            return Ok(());
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            tracing::warn!(path = %path, "ignoring whiteout with an invalid name");
            return Ok(());
        }
        let dir = self.parent_fd(parent, path)?;
        clear_existing(dir.as_fd(), hidden, false).map_err(|e| io_err(path, "replace", e))?;
        rfs::mknodat(&dir, hidden, FileType::CharacterDevice, Mode::empty(), 0)
            .map_err(|e| io_err(path, "create whiteout", e))?;
        self.stats.inodes += 1;
        rfs::chownat(
            &dir,
            hidden,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err(path, "chown whiteout", e))
    }

    /// Sets the recorded directory mtimes, now that no more children will be created.
    fn apply_dir_times(&mut self) -> Result<(), UnpackError> {
        let dir_times = std::mem::take(&mut self.dir_times);
        for (comps, mtime) in &dir_times {
            let (name, parent) = comps.split_last().expect("non-empty");
            let path = String::from_utf8_lossy(&join_components(comps)).into_owned();
            let dir = match self.resolve_dir(parent, false) {
                Ok(dir) => dir,
                // Removed or replaced by a later entry.
                Err(e) if e == Errno::NOENT || e == Errno::NOTDIR => continue,
                Err(e) => return Err(io_err(&path, "resolve directory", e)),
            };
            match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                Ok(_) => continue,
                Err(e) if e == Errno::NOENT => continue,
                Err(e) => return Err(io_err(&path, "stat directory", e)),
            }
            let times = Timestamps {
                last_access: *mtime,
                last_modification: *mtime,
            };
            rfs::utimensat(&dir, name.as_slice(), &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io_err(&path, "set directory times", e))?;
        }
        Ok(())
    }
}

/// Cleans a tar name lexically, relative to the layer root: drops empty and `.` components,
/// and `..` removes the previous component (never going above the root).
fn clean_components(name: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c.to_vec()),
        }
    }
    out
}

fn join_components(comps: &[Vec<u8>]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
}

/// Parses an entry's mode, owner, mtime (PAX `mtime` for sub-second precision) and
/// `SCHILY.xattr.*` records.
fn parse_meta<R: Read>(entry: &mut tar::Entry<'_, R>, path: &str) -> Result<Meta, UnpackError> {
    let header_err = |source| UnpackError::Header {
        path: path.to_owned(),
        source,
    };
    let out_of_range = |what: &str| UnpackError::Header {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("{what} out of range")),
    };
    let header = entry.header();
    let mode = header.mode().map_err(header_err)? & 0o7777;
    let uid = u32::try_from(header.uid().map_err(header_err)?).map_err(|_| out_of_range("uid"))?;
    let gid = u32::try_from(header.gid().map_err(header_err)?).map_err(|_| out_of_range("gid"))?;
    let secs = i64::try_from(header.mtime().map_err(header_err)?).unwrap_or(i64::MAX);
    let mut mtime = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(header_err)? {
        for ext in exts {
            let ext = ext.map_err(header_err)?;
            let key = ext.key_bytes();
            if key == b"mtime" {
                if let Some(t) = parse_pax_time(ext.value_bytes()) {
                    mtime = t;
                }
            } else if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// Parses a PAX time (`[-]SECONDS[.FRACTION]`); `None` if malformed.
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    let (tv_sec, tv_nsec) = match (neg, nanos) {
        (false, n) => (secs, n),
        (true, 0) => (-secs, 0),
        (true, n) => (-secs - 1, 1_000_000_000 - n),
    };
    Some(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

/// Creates directory `name` in `dir` and returns it opened (never following a symlink), with
/// `mode` set exactly (not reduced by the umask).
fn make_dir(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> Result<OwnedFd, Errno> {
    rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rfs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    Ok(fd)
}

/// Owner, xattrs, mode (after chown, which clears setuid/setgid and file capabilities) and,
/// if `times`, the mtime of an opened file.
fn apply_meta(fd: BorrowedFd<'_>, meta: &Meta, times: bool, path: &str) -> Result<(), UnpackError> {
    rfs::fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(|e| io_err(path, "chown", e))?;
    for (name, value) in &meta.xattrs {
        if let Err(e) = rfs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()) {
            let lossy = String::from_utf8_lossy(name);
            if e == Errno::NOTSUP || name.starts_with(b"security.") || name.starts_with(b"trusted.")
            {
                tracing::warn!(path = %path, xattr = %lossy, error = %e, "cannot set xattr, skipping");
            } else {
                return Err(io_err(path, "set xattr", e));
            }
        }
    }
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(|e| io_err(path, "chmod", e))?;
    if times {
        rfs::futimens(fd, &meta.times()).map_err(|e| io_err(path, "set times", e))?;
    }
    Ok(())
}

/// Makes room for a new entry `name` in `dir`: a non-directory is unlinked, a directory is
/// removed recursively unless `keep_dir`. Returns whether an existing directory was kept.
/// Never follows a symlink.
fn clear_existing(dir: BorrowedFd<'_>, name: &[u8], keep_dir: bool) -> Result<bool, Errno> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(e) if e == Errno::NOENT => return Ok(false),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        rfs::unlinkat(dir, name, AtFlags::empty())?;
        return Ok(false);
    }
    if keep_dir {
        return Ok(true);
    }
    remove_tree(dir, name)?;
    Ok(false)
}

/// Removes directory `name` in `parent` and everything under it, with `*at` calls on opened
/// directory fds only (symlinks inside are unlinked, never followed). Iterative, so a deep tree
/// cannot overflow the stack.
fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let open_dir = |dir: BorrowedFd<'_>, name: &[u8]| {
        rfs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let name = CString::new(name).map_err(|_| Errno::INVAL)?;
    // Directories being emptied, each with its name in the one before (or in `parent`).
    let mut stack: Vec<(OwnedFd, CString)> = vec![(open_dir(parent, name.as_bytes())?, name)];
    while let Some((fd, _)) = stack.last() {
        let mut child_dir = None;
        // A fresh stream each time: entries removed since the last pass are gone.
        let mut entries = Dir::read_from(fd)?;
        while let Some(ent) = entries.read() {
            let ent = ent?;
            let child = ent.file_name();
            if child == c"." || child == c".." {
                continue;
            }
            let st = match rfs::statat(fd, child, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(e) if e == Errno::NOENT => continue,
                Err(e) => return Err(e),
            };
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                child_dir = Some((open_dir(fd.as_fd(), child.to_bytes())?, child.to_owned()));
                break;
            }
            match rfs::unlinkat(fd, child, AtFlags::empty()) {
                Err(e) if e != Errno::NOENT => return Err(e),
                _ => {}
            }
        }
        if let Some(child) = child_dir {
            stack.push(child);
            continue;
        }
        let (_fd, name) = stack.pop().expect("non-empty");
        let dir = stack.last().map(|(fd, _)| fd.as_fd()).unwrap_or(parent);
        rfs::unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::PathBuf;
    use tar::Header;

    const MTIME: u64 = 1_600_000_000;

    /// A tar built entry by entry, with raw names where the builder would refuse them.
    struct Tar {
        b: tar::Builder<Vec<u8>>,
    }

    impl Tar {
        fn new() -> Self {
            Tar {
                b: tar::Builder::new(Vec::new()),
            }
        }

        fn header(name: &[u8], kind: EntryType, size: u64, mode: u32) -> Header {
            assert!(name.len() < 100, "use pax() for long names");
            let mut h = Header::new_ustar();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(MTIME);
            h
        }

        fn push(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
            h.set_cksum();
            self.b.append(&h, data).unwrap();
            self
        }

        fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
            let h = Self::header(
                name.as_bytes(),
                EntryType::Regular,
                data.len() as u64,
                0o644,
            );
            self.push(h, data)
        }

        fn file_owned(
            &mut self,
            name: &str,
            data: &[u8],
            mode: u32,
            uid: u64,
            gid: u64,
            mtime: u64,
        ) -> &mut Self {
            let mut h = Self::header(name.as_bytes(), EntryType::Regular, data.len() as u64, mode);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_mtime(mtime);
            self.push(h, data)
        }

        fn dir(&mut self, name: &str, mode: u32, uid: u64, gid: u64, mtime: u64) -> &mut Self {
            let mut h = Self::header(name.as_bytes(), EntryType::Directory, 0, mode);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_mtime(mtime);
            self.push(h, b"")
        }

        fn link(&mut self, kind: EntryType, name: &str, target: &str) -> &mut Self {
            let mut h = Self::header(name.as_bytes(), kind, 0, 0o777);
            let t = target.as_bytes();
            assert!(t.len() < 100);
            h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
            self.push(h, b"")
        }

        fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.link(EntryType::Symlink, name, target)
        }

        fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.link(EntryType::Link, name, target)
        }

        fn device(&mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> &mut Self {
            let mut h = Self::header(name.as_bytes(), kind, 0, 0o666);
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
            self.push(h, b"")
        }

        /// A PAX extended header (`x`) describing the next entry.
        fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            let mut data = Vec::new();
            for (k, v) in records {
                // "LEN key=value\n", LEN counting itself.
                let rest = k.len() + v.len() + 3;
                let mut len = rest + 1;
                while len != rest + len.to_string().len() {
                    len = rest + len.to_string().len();
                }
                data.extend_from_slice(format!("{len} {k}=").as_bytes());
                data.extend_from_slice(v);
                data.push(b'\n');
            }
            let h = Self::header(b"PaxHeader", EntryType::XHeader, data.len() as u64, 0o644);
            self.push(h, &data)
        }

        /// A GNU long-name (`L`) entry giving the next entry's name, which may be any length.
        fn gnu_long_name(&mut self, name: &[u8]) -> &mut Self {
            let mut data = name.to_vec();
            data.push(0);
            let mut h = Header::new_gnu();
            let n = b"././@LongLink";
            h.as_old_mut().name[..n.len()].copy_from_slice(n);
            h.set_entry_type(EntryType::GNULongName);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            self.push(h, &data)
        }

        fn finish(&mut self) -> Vec<u8> {
            let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
            b.into_inner().unwrap()
        }
    }

    /// `base/dest` (the layer dir) and `base/outside/victim` (what hostile entries aim at).
    struct Env {
        _tmp: tempfile::TempDir,
        base: PathBuf,
        dest: PathBuf,
        outside: PathBuf,
    }

    const VICTIM: &[u8] = b"original victim content";

    impl Env {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let base = tmp.path().canonicalize().unwrap();
            let dest = base.join("dest");
            let outside = base.join("outside");
            std::fs::create_dir(&dest).unwrap();
            std::fs::create_dir(&outside).unwrap();
            std::fs::write(outside.join("victim"), VICTIM).unwrap();
            std::fs::set_permissions(
                outside.join("victim"),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
            Env {
                _tmp: tmp,
                base,
                dest,
                outside,
            }
        }

        fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
            unpack_layer(tar, &self.dest)
        }

        /// The outside directory still holds exactly the victim, unchanged, with one link, and
        /// `base` holds only `dest` and `outside`.
        fn assert_outside_untouched(&self) {
            let names = |p: &Path| {
                let mut v: Vec<String> = std::fs::read_dir(p)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                v
            };
            assert_eq!(names(&self.outside), vec!["victim"]);
            assert_eq!(names(&self.base), vec!["dest", "outside"]);
            let victim = self.outside.join("victim");
            let md = std::fs::symlink_metadata(&victim).unwrap();
            assert!(md.file_type().is_file());
            assert_eq!(md.nlink(), 1, "victim gained a hard link");
            assert_eq!(md.mode() & 0o7777, 0o644);
            assert_eq!(md.uid(), 0);
            assert_eq!(std::fs::read(&victim).unwrap(), VICTIM);
            let mut opaque = [0u8; 8];
            assert!(rfs::getxattr(&self.outside, OPAQUE_XATTR, &mut opaque[..]).is_err());
        }

        /// `dest` joined with an absolute path (where an absolute entry name must land).
        fn inside(&self, abs: &Path) -> PathBuf {
            self.dest.join(abs.strip_prefix("/").unwrap())
        }
    }

    fn lmeta(p: &Path) -> std::fs::Metadata {
        std::fs::symlink_metadata(p).unwrap()
    }

    #[test]
    fn files_dirs_modes_owners_mtimes() {
        let env = Env::new();
        let tar = Tar::new()
            .dir("./", 0o755, 0, 0, MTIME)
            .dir("./etc/", 0o750, 1000, 2000, 1_500_000_000)
            .file_owned(
                "./etc/hosts",
                b"127.0.0.1 localhost\n",
                0o640,
                1001,
                1002,
                1_400_000_000,
            )
            .file("deep/missing/parents/f", b"xyz")
            .file_owned("etc/empty", b"", 0o600, 5, 6, 1_300_000_000)
            .finish();
        let stats = env.unpack(&tar).unwrap();
        // etc, hosts, deep, missing, parents, f, empty.
        assert_eq!(
            stats,
            UnpackStats {
                bytes: 20 + 3,
                inodes: 7
            }
        );

        let etc = lmeta(&env.dest.join("etc"));
        assert!(etc.is_dir());
        assert_eq!(etc.mode() & 0o7777, 0o750);
        assert_eq!((etc.uid(), etc.gid()), (1000, 2000));
        assert_eq!(
            etc.mtime(),
            1_500_000_000,
            "dir mtime set after its children"
        );

        let hosts = lmeta(&env.dest.join("etc/hosts"));
        assert!(hosts.is_file());
        assert_eq!(hosts.mode() & 0o7777, 0o640);
        assert_eq!((hosts.uid(), hosts.gid()), (1001, 1002));
        assert_eq!(hosts.mtime(), 1_400_000_000);
        assert_eq!(
            std::fs::read(env.dest.join("etc/hosts")).unwrap(),
            b"127.0.0.1 localhost\n"
        );

        let empty = lmeta(&env.dest.join("etc/empty"));
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.mode() & 0o7777, 0o600);
        assert_eq!((empty.uid(), empty.gid()), (5, 6));

        for p in ["deep", "deep/missing", "deep/missing/parents"] {
            let m = lmeta(&env.dest.join(p));
            assert!(m.is_dir(), "{p}");
            assert_eq!(m.mode() & 0o7777, 0o755, "{p}");
            assert_eq!(m.uid(), 0);
        }
        assert_eq!(
            std::fs::read(env.dest.join("deep/missing/parents/f")).unwrap(),
            b"xyz"
        );
        // The root entry is skipped: dest keeps its own metadata.
        assert_ne!(lmeta(&env.dest).mtime(), MTIME as i64);
    }

    #[test]
    fn pax_mtime_and_xattrs() {
        let env = Env::new();
        let tar = Tar::new()
            .pax(&[
                ("mtime", b"1234567890.5"),
                ("SCHILY.xattr.trusted.test", b"value\0bin"),
                ("SCHILY.xattr.security.capability", b"garbage"),
            ])
            .file("bin/ping", b"ELF")
            .pax(&[("SCHILY.xattr.trusted.dir", b"d")])
            .dir("data/", 0o700, 0, 0, MTIME)
            .finish();
        env.unpack(&tar).unwrap();
        let ping = env.dest.join("bin/ping");
        let m = lmeta(&ping);
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567_890, 500_000_000));
        let mut buf = [0u8; 64];
        let n = rfs::getxattr(&ping, "trusted.test", &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"value\0bin");
        // An invalid security.capability value is refused by the kernel: warned and skipped.
        assert!(rfs::getxattr(&ping, "security.capability", &mut buf[..]).is_err());
        let n = rfs::getxattr(env.dest.join("data"), "trusted.dir", &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"d");
        assert_eq!(
            parse_pax_time(b"-1.25").map(|t| (t.tv_sec, t.tv_nsec)),
            Some((-2, 750_000_000))
        );
        assert!(parse_pax_time(b"12a").is_none());
    }

    #[test]
    fn setuid_setgid_sticky_kept() {
        let env = Env::new();
        let tar = Tar::new()
            .file_owned("usr/bin/su", b"su", 0o4755, 0, 0, MTIME)
            .file_owned("usr/bin/wall", b"wall", 0o2755, 0, 5, MTIME)
            .dir("tmp/", 0o1777, 0, 0, MTIME)
            .finish();
        env.unpack(&tar).unwrap();
        assert_eq!(lmeta(&env.dest.join("usr/bin/su")).mode() & 0o7777, 0o4755);
        let wall = lmeta(&env.dest.join("usr/bin/wall"));
        assert_eq!(wall.mode() & 0o7777, 0o2755);
        assert_eq!(wall.gid(), 5);
        assert_eq!(lmeta(&env.dest.join("tmp")).mode() & 0o7777, 0o1777);
    }

    #[test]
    fn symlinks_and_hardlinks_inside() {
        let env = Env::new();
        let tar = Tar::new()
            .file("bin/busybox", b"box")
            .symlink("bin/sh", "busybox")
            .symlink("etc/passwd-link", "/etc/passwd")
            .hardlink("bin/ls", "bin/busybox")
            .hardlink("./bin/cat", "/bin/busybox")
            .hardlink("bin/sh2", "bin/sh")
            .hardlink("bin/ls", "bin/ls")
            .finish();
        let stats = env.unpack(&tar).unwrap();
        // bin, busybox, sh, etc, passwd-link, ls, cat, sh2.
        assert_eq!(
            stats,
            UnpackStats {
                bytes: 3,
                inodes: 8
            }
        );
        assert_eq!(
            std::fs::read_link(env.dest.join("bin/sh")).unwrap(),
            PathBuf::from("busybox")
        );
        // Symlink text is kept as-is, even when it points out of the layer.
        assert_eq!(
            std::fs::read_link(env.dest.join("etc/passwd-link")).unwrap(),
            PathBuf::from("/etc/passwd")
        );
        let bb = lmeta(&env.dest.join("bin/busybox"));
        assert_eq!(bb.nlink(), 3);
        assert_eq!(lmeta(&env.dest.join("bin/ls")).ino(), bb.ino());
        assert_eq!(lmeta(&env.dest.join("bin/cat")).ino(), bb.ino());
        // A hard link to a symlink links the symlink itself.
        let sh2 = lmeta(&env.dest.join("bin/sh2"));
        assert!(sh2.file_type().is_symlink());
        assert_eq!(sh2.ino(), lmeta(&env.dest.join("bin/sh")).ino());
    }

    #[test]
    fn whiteouts_and_opaque_dirs() {
        let env = Env::new();
        let mut t = Tar::new();
        t.dir("etc/", 0o755, 0, 0, MTIME).file("etc/.wh.motd", b"");
        let mut h = Tar::header(b"var/lib/.wh.apt", EntryType::Regular, 0, 0o644);
        h.set_uid(7);
        h.set_gid(8);
        t.push(h, b"");
        let tar = t
            .file("opaque/.wh..wh..opq", b"")
            .file(".wh..wh..opq", b"")
            .file("etc/.wh..wh.plnk", b"")
            .file("etc/.wh...", b"")
            .file("etc/.wh..", b"")
            .finish();
        let stats = env.unpack(&tar).unwrap();
        // etc, motd whiteout, var, lib, apt whiteout, opaque.
        assert_eq!(
            stats,
            UnpackStats {
                bytes: 0,
                inodes: 6
            }
        );
        for (p, owner) in [("etc/motd", (0, 0)), ("var/lib/apt", (7, 8))] {
            let m = lmeta(&env.dest.join(p));
            assert!(m.file_type().is_char_device(), "{p}");
            assert_eq!(m.rdev(), 0, "{p}");
            assert_eq!((m.uid(), m.gid()), owner, "{p}");
        }
        let mut buf = [0u8; 8];
        for d in [env.dest.join("opaque"), env.dest.clone()] {
            let n = rfs::getxattr(&d, OPAQUE_XATTR, &mut buf[..]).unwrap();
            assert_eq!(&buf[..n], b"y");
        }
        let mut names: Vec<_> = std::fs::read_dir(env.dest.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec!["motd"], "no .wh.* file is ever written");
        assert!(env.base.join("dest").exists());
    }

    #[test]
    fn existing_entries_are_replaced() {
        let env = Env::new();
        let out = env.outside.to_str().unwrap().to_owned();
        let tar = Tar::new()
            .file("a", b"first")
            .file("a", b"second")
            .dir("d/", 0o700, 0, 0, MTIME)
            .file("d/keep", b"k")
            .dir("d/", 0o711, 3, 3, MTIME)
            // A tree holding symlinks to the outside, then replaced by a file.
            .symlink("tree/out", &out)
            .symlink("tree/victim", &format!("{out}/victim"))
            .file("tree/sub/deeper/x", b"x")
            .file("tree", b"now a file")
            // A symlink replaced by a file: the file is not written through it.
            .symlink("s", &format!("{out}/victim"))
            .file("s", b"replaced")
            // A file replaced by a directory.
            .file("f", b"f")
            .dir("f/", 0o755, 0, 0, MTIME)
            .finish();
        env.unpack(&tar).unwrap();
        assert_eq!(std::fs::read(env.dest.join("a")).unwrap(), b"second");
        let d = lmeta(&env.dest.join("d"));
        assert_eq!((d.mode() & 0o7777, d.uid()), (0o711, 3));
        assert_eq!(
            std::fs::read(env.dest.join("d/keep")).unwrap(),
            b"k",
            "dir merged"
        );
        assert_eq!(std::fs::read(env.dest.join("tree")).unwrap(), b"now a file");
        assert!(lmeta(&env.dest.join("s")).is_file());
        assert_eq!(std::fs::read(env.dest.join("s")).unwrap(), b"replaced");
        assert!(lmeta(&env.dest.join("f")).is_dir());
        env.assert_outside_untouched();
    }

    #[test]
    fn dotdot_names_stay_inside() {
        let env = Env::new();
        let mut t = Tar::new();
        for name in [
            "../outside/victim",
            "../../outside/victim",
            "a/../../../outside/new",
        ] {
            let h = Tar::header(name.as_bytes(), EntryType::Regular, 4, 0o644);
            t.push(h, b"evil");
        }
        let h = Tar::header(b"../../x", EntryType::Regular, 4, 0o644);
        t.push(h, b"evil");
        let h = Tar::header(b"../", EntryType::Directory, 0, 0o777);
        t.push(h, b"");
        // A PAX path is cleaned the same way.
        t.pax(&[("path", b"../../../outside/pax")]);
        t.push(
            Tar::header(b"ignored", EntryType::Regular, 4, 0o644),
            b"evil",
        );
        // So is a GNU long name.
        let long = format!("{}outside/long", "../".repeat(40));
        t.gnu_long_name(long.as_bytes());
        t.push(Tar::header(b"short", EntryType::Regular, 4, 0o644), b"evil");
        env.unpack(&t.finish()).unwrap();
        env.assert_outside_untouched();
        assert_eq!(
            std::fs::read(env.dest.join("outside/long")).unwrap(),
            b"evil"
        );
        assert!(!env.dest.join("short").exists());
        assert_eq!(
            std::fs::read(env.dest.join("outside/victim")).unwrap(),
            b"evil"
        );
        assert_eq!(
            std::fs::read(env.dest.join("outside/new")).unwrap(),
            b"evil"
        );
        assert_eq!(
            std::fs::read(env.dest.join("outside/pax")).unwrap(),
            b"evil"
        );
        assert_eq!(std::fs::read(env.dest.join("x")).unwrap(), b"evil");
        assert_ne!(
            lmeta(&env.dest).mode() & 0o777,
            0o777,
            "root metadata not changed"
        );
    }

    #[test]
    fn absolute_names_stay_inside() {
        let env = Env::new();
        let abs = env.outside.join("victim");
        let abs_new = env.outside.join("new");
        let t = Tar::new()
            .file(abs.to_str().unwrap(), b"evil")
            .file(abs_new.to_str().unwrap(), b"evil")
            .finish();
        env.unpack(&t).unwrap();
        env.assert_outside_untouched();
        assert_eq!(std::fs::read(env.inside(&abs)).unwrap(), b"evil");
        assert_eq!(std::fs::read(env.inside(&abs_new)).unwrap(), b"evil");
    }

    #[test]
    fn files_through_symlinks_stay_inside() {
        let env = Env::new();
        let out = env.outside.to_str().unwrap().to_owned();
        // A symlink aimed outside resolves inside dest, where its target does not exist: the
        // file through it fails (no directory is created through a dangling symlink).
        for (link, target) in [
            ("abs", out.as_str()),
            ("rel", "../outside"),
            ("deeprel", "../../../../../../../../outside"),
        ] {
            let name = format!("{link}/victim");
            let t = Tar::new()
                .symlink(link, target)
                .file(&name, b"evil")
                .finish();
            let err = env.unpack(&t).unwrap_err();
            assert!(
                matches!(&err, UnpackError::Io { path, source, .. }
                    if *path == name && source.raw_os_error() == Some(enoent())),
                "{err}"
            );
            env.assert_outside_untouched();
        }

        // With the targets present inside dest, everything lands inside.
        let env = Env::new();
        let out = env.outside.to_str().unwrap().to_owned();
        let t = Tar::new()
            .dir(&format!("{out}/"), 0o755, 0, 0, MTIME)
            .dir("outside/", 0o755, 0, 0, MTIME)
            .symlink("abs", &out)
            .symlink("rel", "../outside")
            .symlink("deeprel", "../../../../../../../../outside")
            .symlink("chain", "abs")
            .file("abs/victim", b"evil")
            .file("rel/victim", b"evil")
            .file("deeprel/new", b"evil")
            .file("chain/new2", b"evil")
            .dir("abs/d/", 0o777, 0, 0, MTIME)
            .symlink("abs/sl", "/")
            .file("abs/sl/outside/victim2", b"evil")
            .file("abs/.wh.victim", b"")
            .file("rel/.wh..wh..opq", b"")
            .finish();
        env.unpack(&t).unwrap();
        env.assert_outside_untouched();
        let inside = env.inside(&env.outside);
        assert!(lmeta(&env.dest.join("abs")).file_type().is_symlink());
        let victim = lmeta(&inside.join("victim"));
        assert!(
            victim.file_type().is_char_device(),
            "whiteout via abs symlink"
        );
        assert_eq!(victim.rdev(), 0);
        for p in ["outside/victim", "outside/new", "outside/victim2"] {
            assert_eq!(std::fs::read(env.dest.join(p)).unwrap(), b"evil", "{p}");
        }
        assert_eq!(std::fs::read(inside.join("new2")).unwrap(), b"evil");
        let d = lmeta(&inside.join("d"));
        assert!(d.is_dir());
        assert_eq!(d.mode() & 0o7777, 0o777);
        let mut buf = [0u8; 8];
        let n = rfs::getxattr(env.dest.join("outside"), OPAQUE_XATTR, &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"y");
    }

    #[test]
    fn hardlink_through_symlink_to_outside_fails_inside() {
        let env = Env::new();
        let out = env.outside.to_str().unwrap().to_owned();
        for target in ["evil/victim", "rel/victim"] {
            let t = Tar::new()
                .symlink("evil", &out)
                .symlink("rel", "../outside")
                .hardlink("stolen", target)
                .finish();
            let err = env.unpack(&t).unwrap_err();
            assert!(
                matches!(&err, UnpackError::Io { path, source, .. }
                    if path == "stolen" && source.raw_os_error() == Some(enoent())),
                "{err}"
            );
            env.assert_outside_untouched();
            assert!(std::fs::symlink_metadata(env.dest.join("stolen")).is_err());
        }
        // A symlink to the victim, then a hard link to that symlink: links the symlink.
        let t = Tar::new()
            .symlink("vl", &format!("{out}/victim"))
            .hardlink("h", "vl")
            .finish();
        env.unpack(&t).unwrap();
        assert!(lmeta(&env.dest.join("h")).file_type().is_symlink());
        env.assert_outside_untouched();
    }

    fn enoent() -> i32 {
        Errno::NOENT.raw_os_error()
    }

    #[test]
    fn hardlink_relative_outside_target_fails() {
        let env = Env::new();
        for target in [
            "../../outside/victim",
            "../outside/victim",
            "./../../../outside/victim",
        ] {
            let t = Tar::new().hardlink("stolen", target).finish();
            let err = env.unpack(&t).unwrap_err();
            assert!(
                matches!(&err, UnpackError::Io { path, .. } if path == "stolen"),
                "{err}"
            );
            env.assert_outside_untouched();
            assert!(std::fs::symlink_metadata(env.dest.join("stolen")).is_err());
        }
        // With a same-named file inside the layer, the link goes to that one.
        let t = Tar::new()
            .file("outside/victim", b"inside")
            .hardlink("linked", "../../outside/victim")
            .finish();
        env.unpack(&t).unwrap();
        assert_eq!(
            lmeta(&env.dest.join("linked")).ino(),
            lmeta(&env.dest.join("outside/victim")).ino()
        );
        env.assert_outside_untouched();
    }

    #[test]
    fn hardlink_absolute_outside_target_fails() {
        let env = Env::new();
        let abs = env.outside.join("victim");
        let t = Tar::new()
            .hardlink("stolen", abs.to_str().unwrap())
            .finish();
        let err = env.unpack(&t).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Io { path, .. } if path == "stolen"),
            "{err}"
        );
        env.assert_outside_untouched();
        assert!(std::fs::symlink_metadata(env.dest.join("stolen")).is_err());
        // Hard links to a directory or to the root are refused.
        let t = Tar::new()
            .dir("d/", 0o755, 0, 0, MTIME)
            .hardlink("l", "d")
            .finish();
        assert!(matches!(env.unpack(&t), Err(UnpackError::Invalid { path, .. }) if path == "l"));
        let t = Tar::new().hardlink("l2", "/..").finish();
        assert!(matches!(env.unpack(&t), Err(UnpackError::Invalid { path, .. }) if path == "l2"));
        env.assert_outside_untouched();
    }

    #[test]
    fn device_nodes_skipped_fifo_created() {
        let env = Env::new();
        let t = Tar::new()
            .device("dev/null", EntryType::Char, 1, 3)
            .device("dev/sda", EntryType::Block, 8, 0)
            .device("../outside/kmem", EntryType::Char, 1, 2)
            .device("run/fifo", EntryType::Fifo, 0, 0)
            .finish();
        let stats = env.unpack(&t).unwrap();
        // run, fifo.
        assert_eq!(
            stats,
            UnpackStats {
                bytes: 0,
                inodes: 2
            }
        );
        assert!(!env.dest.join("dev").exists());
        assert!(!env.dest.join("outside").exists());
        let fifo = lmeta(&env.dest.join("run/fifo"));
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o666);
        env.assert_outside_untouched();
    }

    #[test]
    fn truncated_and_malformed_tars_error() {
        let data = vec![7u8; 2000];
        let full = Tar::new().file("a", b"a").file("big", &data).finish();
        // Inside the data of the last file.
        let env = Env::new();
        let err = env.unpack(&full[..1024 + 512 + 1000]).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Truncated { path, expected: 2000, got: 1000 } if path == "big"),
            "{err}"
        );
        // Inside a header.
        let env = Env::new();
        let err = env.unpack(&full[..1024 + 300]).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Tar { after, .. } if after == "a"),
            "{err}"
        );
        // Inside the padding after the data.
        let env = Env::new();
        let err = env.unpack(&full[..1024 + 512 + 2010]).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Tar { after, .. } if after == "big"),
            "{err}"
        );
        // A corrupt header checksum.
        let mut bad = full.clone();
        bad[10] ^= 0x55;
        let env = Env::new();
        assert!(matches!(env.unpack(&bad), Err(UnpackError::Tar { .. })));
        // An unsupported entry type.
        let mut t = Tar::new();
        t.push(Tar::header(b"vol", EntryType::new(b'V'), 0, 0o644), b"");
        let env = Env::new();
        let err = env.unpack(&t.finish()).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Unsupported { path, .. } if path == "vol"),
            "{err}"
        );
    }

    #[test]
    fn drains_reader_to_eof() {
        struct Counting<'a>(&'a [u8], usize);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 += n;
                Ok(n)
            }
        }
        let env = Env::new();
        let mut tar = Tar::new().file("f", b"data").finish();
        tar.extend_from_slice(&[0u8; 10240]); // record padding after the end marker
        let mut r = Counting(&tar, 0);
        let stats = unpack_layer(&mut r, &env.dest).unwrap();
        assert_eq!(
            stats,
            UnpackStats {
                bytes: 4,
                inodes: 1
            }
        );
        assert_eq!(r.1, tar.len());
    }

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let env = Env::new();
        let d = env.dest.join("t");
        std::fs::create_dir_all(d.join("a/b/c")).unwrap();
        std::fs::write(d.join("a/b/c/f"), b"x").unwrap();
        std::os::unix::fs::symlink(&env.outside, d.join("a/out")).unwrap();
        std::os::unix::fs::symlink(env.outside.join("victim"), d.join("a/b/v")).unwrap();
        let root = rfs::open(&env.dest, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        remove_tree(root.as_fd(), b"t").unwrap();
        assert!(!d.exists());
        env.assert_outside_untouched();
    }

    #[test]
    fn clean_components_is_root_relative() {
        let c = |s: &str| {
            clean_components(s.as_bytes())
                .iter()
                .map(|c| String::from_utf8(c.clone()).unwrap())
                .collect::<Vec<_>>()
                .join("/")
        };
        assert_eq!(c("../../etc/x"), "etc/x");
        assert_eq!(c("/abs/path"), "abs/path");
        assert_eq!(c("./a/./b//c/"), "a/b/c");
        assert_eq!(c("a/b/../../../c"), "c");
        assert_eq!(c("./"), "");
        assert_eq!(c("/.."), "");
    }
}
