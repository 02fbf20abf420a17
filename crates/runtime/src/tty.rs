//! Pseudo-terminal for interactive containers (`whittle run -it`): the init helper opens the pty
//! in the container's own devpts (so `tty` inside shows /dev/pts/0, as with runc's console
//! socket) and passes the master back; the caller's terminal is put in raw mode and bytes are
//! copied both ways until the container exits.

use crate::error::{Error, Result};
use crate::run::CancelToken;
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsFd, OwnedFd};

/// Gives the container's terminal the size of the caller's, if the caller has one.
pub(crate) fn copy_size(master: &OwnedFd) {
    if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin()) {
        let _ = rustix::termios::tcsetwinsize(master, ws);
    }
}

/// Restores the caller's terminal mode when dropped.
struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    fn enter() -> Self {
        let stdin = std::io::stdin();
        match rustix::termios::tcgetattr(&stdin) {
            Ok(orig) => {
                let mut raw = orig.clone();
                raw.make_raw();
                let _ =
                    rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
                RawMode(Some(orig))
            }
            Err(_) => RawMode(None),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(orig) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                orig,
            );
        }
    }
}

/// Copies stdin → master and master → stdout until the container exits or is cancelled.
pub(crate) fn proxy(master: &OwnedFd, pidfd: &OwnedFd, cancel: &CancelToken) -> Result<()> {
    let _raw = RawMode::enter();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut buf = [0u8; 16384];
    let mut stdin_open = true;
    let cancel_fd = cancel.event_fd();
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let mut fds = vec![
            PollFd::new(master, PollFlags::IN),
            PollFd::new(pidfd, PollFlags::IN),
            PollFd::new(&cancel_fd, PollFlags::IN),
        ];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
        }
        let (m, p) = (fds[0].revents(), fds[1].revents());
        let s = fds
            .get(3)
            .map(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        drop(fds);
        if !m.is_empty() {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => return Ok(()),
                Ok(n) => write_all(stdout.as_fd(), &buf[..n])?,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::sys("read pty", e)),
            }
        } else if !p.is_empty() {
            return Ok(());
        }
        if !s.is_empty() {
            match rustix::io::read(&stdin, &mut buf) {
                Ok(0) => stdin_open = false,
                Ok(n) => write_all(master.as_fd(), &buf[..n])?,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}

fn write_all(fd: rustix::fd::BorrowedFd<'_>, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::sys("write", e)),
        }
    }
    Ok(())
}
