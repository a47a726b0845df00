//! Descriptors for a child's stdio: pipes, non-blocking mode, and receiving a descriptor over
//! a unix socket (a runtime's `--console-socket` hands over the pty master that way).
//!
//! Everything here is close-on-exec: a descriptor reaches a child only as the stdio it is
//! explicitly given.

use std::{
    io::{self, IoSliceMut},
    mem::MaybeUninit,
    os::fd::{AsFd, OwnedFd},
};

use rustix::{
    fs::OFlags,
    net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags},
    pipe::PipeFlags,
};

use crate::error::{os, Error};

/// A close-on-exec pipe: (read end, write end), both blocking.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
        .map_err(|e| Error::call("creating a pipe", "", os(e)))
}

/// Sets `O_NONBLOCK` on the open file behind `fd` (for one end of a pipe, only that end).
pub fn set_nonblocking(fd: impl AsFd) -> Result<(), Error> {
    let fd = fd.as_fd();
    let flags = rustix::fs::fcntl_getfl(fd)
        .map_err(|e| Error::call("reading the flags of a descriptor", "", os(e)))?;
    rustix::fs::fcntl_setfl(fd, flags | OFlags::NONBLOCK)
        .map_err(|e| Error::call("setting a descriptor non-blocking", "", os(e)))
}

/// Receives one message on the unix stream `socket` and the first descriptor it carries
/// (`SCM_RIGHTS`, received close-on-exec). `None` when the message carried none or the peer
/// closed the connection. Any further descriptors in the message are closed.
pub fn recv_fd(socket: impl AsFd) -> Result<Option<OwnedFd>, Error> {
    // The data is whatever the sender puts beside the descriptor (runc: the pty's name).
    let mut data = [0u8; 256];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    loop {
        let mut iov = [IoSliceMut::new(&mut data)];
        match rustix::net::recvmsg(&socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::call("receiving a descriptor", "", os(e))),
        }
    }
    let mut received = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                // The first one is the one we asked for; dropping the others closes them.
                if received.is_none() {
                    received = Some(fd);
                }
            }
        }
    }
    Ok(received)
}

/// Whether an error is "try again" (`EAGAIN`/`EWOULDBLOCK`) on a non-blocking descriptor.
pub fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

#[cfg(test)]
mod tests {
    use std::{
        io::{IoSlice, Read, Write},
        os::unix::net::UnixStream,
    };

    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

    use super::*;

    #[test]
    fn a_descriptor_passes_over_a_unix_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, w) = pipe().unwrap();
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [w.as_fd()];
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(
            &a,
            &[IoSlice::new(b"/dev/pts/9")],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        drop(w);
        let got = recv_fd(&b).unwrap().expect("a descriptor");
        let flags = rustix::io::fcntl_getfd(&got).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        // It is the pipe's write end: what goes in comes out of the read end.
        let mut w = std::fs::File::from(got);
        w.write_all(b"hi").unwrap();
        drop(w);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hi");
        // A message without one, then the end of the connection.
        (&a).write_all(b"x").unwrap();
        assert!(recv_fd(&b).unwrap().is_none());
        drop(a);
        assert!(recv_fd(&b).unwrap().is_none());
    }

    #[test]
    fn nonblocking_read_end_says_would_block() {
        let (r, _w) = pipe().unwrap();
        set_nonblocking(&r).unwrap();
        let err = std::fs::File::from(r).read(&mut [0u8; 4]).unwrap_err();
        assert!(is_would_block(&err));
    }
}
