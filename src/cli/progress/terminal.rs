//! stderr as a terminal: the live line, which stage of a pipeline draws it,
//! and messages that erase it before they print.

use std::fmt;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{IsTerminal, Write as _};
use std::os::fd::AsRawFd;
use std::sync::{Mutex, OnceLock};

use super::lock;

/// Erases the current line of a terminal: back to its start, clear to its end.
const ERASE: &str = "\r\x1b[K";

/// Whether this process has a live line on the terminal now.
static DRAWN: Mutex<bool> = Mutex::new(false);

/// Whether stderr is a terminal that redraws a line in place (not `TERM=dumb`).
pub(super) fn is_live() -> bool {
    static LIVE: OnceLock<bool> = OnceLock::new();
    *LIVE.get_or_init(|| std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |term| term != "dumb"))
}

/// Prints one message line on stderr, in one write. On a terminal it first
/// erases the line it starts on: a live progress line, this stage's or
/// another's, would otherwise run into it.
#[doc(hidden)]
pub fn message(text: fmt::Arguments<'_>) {
    let mut line = String::with_capacity(128);
    if is_live() {
        line.push_str(ERASE);
    }
    // Names and bytes from a stream may hold control characters: never raw.
    let _ = writeln!(line, "{}", crate::cli::printable(&text.to_string(), false));
    let mut drawn = lock(&DRAWN);
    *drawn = false;
    // Unit tests: through the macro the test harness captures, so a test
    // that provokes a warning keeps the suite's output clean. (Not in the
    // binaries: eprint! panics when stderr is gone.)
    #[cfg(test)]
    eprint!("{line}");
    #[cfg(not(test))]
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The terminal as this stage's reporter sees it: whether it holds the
/// live line, and the handle its lock is on.
pub(super) struct Terminal {
    /// stderr's terminal opened anew: a lock on stderr itself would be shared
    /// by every stage of the pipeline, which inherit the same open file.
    device: Option<File>,
    owned: bool,
}

impl Terminal {
    pub(super) fn open() -> Terminal {
        use std::os::unix::fs::OpenOptionsExt;
        let device = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open("/proc/self/fd/2")
            .ok();
        Terminal { device, owned: false }
    }

    /// Whether this stage may draw: it holds the terminal's lock, or takes it
    /// now (the stage that held it has ended). Without /proc, it just draws.
    pub(super) fn own(&mut self) -> bool {
        if !self.owned {
            self.owned = match &self.device {
                // SAFETY: flock on a file descriptor this struct owns.
                Some(file) => unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 },
                None => true,
            };
        }
        self.owned
    }

    /// Redraws the live line, cut to the terminal's width (a wrapped line
    /// could not be erased).
    pub(super) fn draw(&self, text: &str) {
        let width = width().saturating_sub(1).max(20);
        let mut line = String::with_capacity(ERASE.len() + text.len());
        line.push_str(ERASE);
        line.extend(text.chars().take(width));
        let mut drawn = lock(&DRAWN);
        *drawn = true;
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    /// Erases the live line, if drawn: the terminal is left as it was.
    pub(super) fn erase(&self) {
        let mut drawn = lock(&DRAWN);
        if *drawn {
            let _ = std::io::stderr().write_all(ERASE.as_bytes());
            *drawn = false;
        }
    }
}

/// The terminal's width in columns (80 if it does not say).
fn width() -> usize {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ fills the winsize it is given, on stderr's descriptor.
    let ok = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        size.ws_col as usize
    } else {
        80
    }
}
