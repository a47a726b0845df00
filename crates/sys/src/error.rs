use std::{io, path::PathBuf};

/// A failed system call: what was being done, on which path when there is one, and the OS error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operation on one path (mount point, namespace file, ...).
    #[error("{op} {}: {source}", path.display())]
    Path {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An operation with a source and a target path (a bind mount).
    #[error("{op} {} onto {}: {source}", from.display(), to.display())]
    TwoPaths {
        op: &'static str,
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An operation on no path; `what` says what it was applied to (flags, a pid, a signal).
    #[error("{op}{}{what}: {source}", if what.is_empty() { "" } else { " " })]
    Call {
        op: &'static str,
        what: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn path(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Path {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn call(op: &'static str, what: impl Into<String>, source: io::Error) -> Self {
        Error::Call {
            op,
            what: what.into(),
            source,
        }
    }

    /// The OS error underneath.
    pub fn io_error(&self) -> &io::Error {
        match self {
            Error::Path { source, .. }
            | Error::TwoPaths { source, .. }
            | Error::Call { source, .. } => source,
        }
    }

    /// The OS error underneath, by value.
    pub fn into_io_error(self) -> io::Error {
        match self {
            Error::Path { source, .. }
            | Error::TwoPaths { source, .. }
            | Error::Call { source, .. } => source,
        }
    }

    /// The errno of the OS error, as [`io::Error::raw_os_error`].
    pub fn raw_os_error(&self) -> Option<i32> {
        self.io_error().raw_os_error()
    }

    /// The kind of the OS error, as [`io::Error::kind`].
    pub fn kind(&self) -> io::ErrorKind {
        self.io_error().kind()
    }
}

/// rustix's errno to std's, keeping the number.
pub(crate) fn os(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}
