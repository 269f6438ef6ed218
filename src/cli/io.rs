//! Inputs and outputs: stdin/stdout or a file for a path argument, reading a
//! buffer full, and files that appear only once complete (temp file beside
//! the target, fsync, rename).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{Context, Result};

/// A path argument where `-` or nothing means stdin/stdout.
pub(crate) fn is_std(path: Option<&Path>) -> bool {
    path.is_none_or(|p| p.as_os_str() == "-")
}

/// Opens an input argument: a file, or stdin for `-` or nothing.
pub(crate) fn open_input(path: Option<&Path>) -> Result<Box<dyn Read + Send>> {
    match path.filter(|p| !is_std(Some(p))) {
        None => Ok(Box::new(std::io::stdin())),
        Some(path) => Ok(Box::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)),
    }
}

/// Creates an output argument: a file, or stdout for `-` or nothing.
pub(crate) fn create_output(path: Option<&Path>) -> Result<Box<dyn Write + Send>> {
    match path.filter(|p| !is_std(Some(p))) {
        None => Ok(Box::new(std::io::stdout())),
        Some(path) => Ok(Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)),
    }
}

/// Opens an input argument as a plain `File`: for stdin a dup of fd 0,
/// skipping `Stdin`'s lock and extra buffer copy (for readers of large blocks).
pub(crate) fn open_input_file(path: Option<&Path>) -> Result<File> {
    match path.filter(|p| !is_std(Some(p))) {
        Some(p) => File::open(p).with_context(|| format!("opening {}", p.display())),
        None => Ok(File::from(std::io::stdin().as_fd().try_clone_to_owned().context("opening stdin")?)),
    }
}

/// Creates an output argument as a plain `File`: `Stdout` is line-buffered,
/// which would scan and copy every binary block for newlines.
pub(crate) fn create_output_file(path: Option<&Path>) -> Result<File> {
    match path.filter(|p| !is_std(Some(p))) {
        Some(p) => File::create(p).with_context(|| format!("creating {}", p.display())),
        None => Ok(File::from(std::io::stdout().as_fd().try_clone_to_owned().context("opening stdout")?)),
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A file that appears at its path only once complete: written to a temp
/// file beside it, then synced and renamed into place by [`AtomicFile::commit`].
/// Dropped without a commit, the temp file is removed and the path untouched.
///
/// A path that already exists and is not a regular file (`/dev/null`, a FIFO,
/// `/dev/stdout`) is written directly: renaming over it would replace a
/// device with a plain file.
pub(crate) struct AtomicFile<'a> {
    target: Target,
    path: &'a Path,
}

enum Target {
    Temp(tempfile::NamedTempFile),
    Direct(File),
}

impl<'a> AtomicFile<'a> {
    /// A temp file named `<prefix>XXXXXX` in `path`'s directory (or `path`
    /// itself, when it is a device or a pipe).
    pub(crate) fn create(path: &'a Path, prefix: &str) -> Result<Self> {
        let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
        if special {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            return Ok(AtomicFile { target: Target::Direct(file), path });
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(dir)
            .with_context(|| format!("creating a temp file beside {}", path.display()))?;
        Ok(AtomicFile { target: Target::Temp(temp), path })
    }

    /// Another handle on the file, to write from elsewhere (a thread).
    pub(crate) fn reopen(&self) -> Result<File> {
        match &self.target {
            Target::Temp(temp) => temp.reopen().with_context(|| format!("opening {}", temp.path().display())),
            Target::Direct(file) => file.try_clone().with_context(|| format!("opening {}", self.path.display())),
        }
    }

    /// The mode the file gets at the path (a device or pipe keeps its own).
    pub(crate) fn set_mode(&self, mode: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let Target::Temp(temp) = &self.target else { return Ok(()) };
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", temp.path().display()))
    }

    /// The file, to write into.
    pub(crate) fn file(&mut self) -> &mut File {
        match &mut self.target {
            Target::Temp(temp) => temp.as_file_mut(),
            Target::Direct(file) => file,
        }
    }

    /// Syncs the temp file and renames it to the path.
    pub(crate) fn commit(self) -> Result<()> {
        let Target::Temp(temp) = self.target else { return Ok(()) };
        temp.as_file().sync_all().with_context(|| format!("syncing {}", temp.path().display()))?;
        temp.persist(self.path).with_context(|| format!("renaming into {}", self.path.display()))?;
        Ok(())
    }
}

/// Writes a JSON record (pretty, one trailing newline) to a file atomically.
pub(crate) fn write_json_atomic(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut file = AtomicFile::create(path, ".mb-")?;
    serde_json::to_writer_pretty(&mut *file.file(), value).with_context(|| format!("writing {}", path.display()))?;
    file.file().write_all(b"\n").with_context(|| format!("writing {}", path.display()))?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    /// `mb-dump -o /dev/null` once renamed a regular file over the device. A
    /// FIFO stands in for it here: it must still be a FIFO afterwards, and hold
    /// what was written.
    #[test]
    fn a_pipe_or_device_is_written_in_place_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success(), "mkfifo");
        // Read-write: opening a FIFO so never blocks on Linux, and keeps it open.
        let mut held = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
        let mut file = AtomicFile::create(&fifo, ".mb-").unwrap();
        file.file().write_all(b"through the pipe").unwrap();
        file.commit().unwrap();
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
        let mut got = [0u8; 16];
        held.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"through the pipe");

        // A regular file still appears only at commit.
        let plain = dir.path().join("plain");
        let mut file = AtomicFile::create(&plain, ".mb-").unwrap();
        file.file().write_all(b"x").unwrap();
        assert!(!plain.exists());
        file.commit().unwrap();
        assert_eq!(std::fs::read(&plain).unwrap(), b"x");
    }
}
