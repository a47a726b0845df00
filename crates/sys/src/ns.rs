//! Namespaces: create new ones for the calling process (`unshare`) or join existing ones
//! (`setns`) by file descriptor or by path (a `/proc/PID/ns/*` link or a bind mount of one).

use std::{fmt, fs::File, os::fd::AsFd, os::fd::BorrowedFd, path::Path, str::FromStr};

use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::error::{os, Error};

/// A kind of Linux namespace, named as in `/proc/PID/ns/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    Net,
    Ipc,
    Uts,
    Pid,
    Mount,
    Cgroup,
    User,
    Time,
}

impl Namespace {
    /// Every kind, in the order crust pins them.
    pub const ALL: [Namespace; 8] = [
        Namespace::Net,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Pid,
        Namespace::Mount,
        Namespace::Cgroup,
        Namespace::User,
        Namespace::Time,
    ];

    /// The name of its link in `/proc/PID/ns/` (`net`, `ipc`, `uts`, `pid`, `mnt`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Namespace::Net => "net",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Pid => "pid",
            Namespace::Mount => "mnt",
            Namespace::Cgroup => "cgroup",
            Namespace::User => "user",
            Namespace::Time => "time",
        }
    }

    fn unshare_flag(self) -> UnshareFlags {
        match self {
            Namespace::Net => UnshareFlags::NEWNET,
            Namespace::Ipc => UnshareFlags::NEWIPC,
            Namespace::Uts => UnshareFlags::NEWUTS,
            Namespace::Pid => UnshareFlags::NEWPID,
            Namespace::Mount => UnshareFlags::NEWNS,
            Namespace::Cgroup => UnshareFlags::NEWCGROUP,
            Namespace::User => UnshareFlags::NEWUSER,
            Namespace::Time => UnshareFlags::NEWTIME,
        }
    }

    fn link_type(self) -> LinkNameSpaceType {
        match self {
            Namespace::Net => LinkNameSpaceType::Network,
            Namespace::Ipc => LinkNameSpaceType::InterProcessCommunication,
            Namespace::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
            Namespace::Pid => LinkNameSpaceType::ProcessID,
            Namespace::Mount => LinkNameSpaceType::Mount,
            Namespace::Cgroup => LinkNameSpaceType::ControlGroup,
            Namespace::User => LinkNameSpaceType::User,
            Namespace::Time => LinkNameSpaceType::Time,
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Namespace {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Namespace::ALL
            .into_iter()
            .find(|ns| ns.name() == s)
            .ok_or_else(|| format!("unknown namespace {s:?}"))
    }
}

fn names(namespaces: &[Namespace]) -> String {
    let names: Vec<&str> = namespaces.iter().map(|ns| ns.name()).collect();
    names.join(",")
}

/// Moves the calling process into new namespaces of the given kinds, all in one `unshare(2)`.
///
/// For [`Namespace::Pid`] only the process's future children land in the new namespace (its
/// first child becomes pid 1 there); the caller itself stays where it is. A user namespace can
/// only be created by a single-threaded process. An empty list does nothing.
pub fn unshare(namespaces: &[Namespace]) -> Result<(), Error> {
    if namespaces.is_empty() {
        return Ok(());
    }
    let flags = namespaces
        .iter()
        .fold(UnshareFlags::empty(), |f, ns| f | ns.unshare_flag());
    // SAFETY: `unshare_unsafe` is unsafe only because of `CLONE_FILES`, which splits the fd
    // table between threads; the flags here are namespace flags only (`Namespace` has no way to
    // express FILES, FS or SYSVSEM), which change no fd visible to other threads.
    unsafe { rustix::thread::unshare_unsafe(flags) }
        .map_err(|e| Error::call("unsharing namespaces", names(namespaces), os(e)))
}

/// Moves the calling thread into the namespace `fd` refers to, which must be of kind `ns`.
///
/// Joining a pid namespace changes where future children are created, not the caller. Joining
/// the caller's own active pid namespace is allowed, which is how a process that unshared
/// `CLONE_NEWPID` to create one child gets back to creating children beside itself.
pub fn setns(fd: BorrowedFd<'_>, ns: Namespace) -> Result<(), Error> {
    rustix::thread::move_into_link_name_space(fd, Some(ns.link_type()))
        .map_err(|e| Error::call("joining namespace", ns.name(), os(e)))
}

/// [`setns`] by path: a `/proc/PID/ns/*` link or a bind mount of one.
pub fn setns_path(path: &Path, ns: Namespace) -> Result<(), Error> {
    let file = File::open(path).map_err(|e| Error::path("opening namespace", path, e))?;
    rustix::thread::move_into_link_name_space(file.as_fd(), Some(ns.link_type())).map_err(|e| {
        Error::path(
            match ns {
                Namespace::Net => "joining net namespace",
                Namespace::Ipc => "joining ipc namespace",
                Namespace::Uts => "joining uts namespace",
                Namespace::Pid => "joining pid namespace",
                Namespace::Mount => "joining mnt namespace",
                Namespace::Cgroup => "joining cgroup namespace",
                Namespace::User => "joining user namespace",
                Namespace::Time => "joining time namespace",
            },
            path,
            os(e),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for ns in Namespace::ALL {
            assert_eq!(ns.name().parse::<Namespace>(), Ok(ns));
        }
        assert!("nett".parse::<Namespace>().is_err());
    }

    #[test]
    fn unshare_nothing_is_a_no_op() {
        unshare(&[]).unwrap();
    }

    #[test]
    fn setns_path_names_the_path_on_error() {
        let err = setns_path(Path::new("/nonexistent/ns/net"), Namespace::Net).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(err.to_string().contains("/nonexistent/ns/net"), "{err}");
    }

    #[test]
    fn setns_rejects_a_namespace_of_another_kind() {
        // /proc/self/ns/uts is not a net namespace: the kernel refuses with EINVAL.
        let err = setns_path(Path::new("/proc/self/ns/uts"), Namespace::Net).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    }
}
