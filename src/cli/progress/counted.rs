//! A reader or writer that counts the bytes through it into a [`Meter`]:
//! how a stage meters its input and output without a hook in the codec.

use std::io::{self, Read, Write};
use std::sync::Arc;

use super::Meter;

/// Wraps a reader or a writer; each call adds its bytes (count: the calls).
pub(crate) struct Counted<T> {
    inner: T,
    meter: Arc<Meter>,
}

impl<T> Counted<T> {
    pub(crate) fn new(inner: T, meter: Arc<Meter>) -> Self {
        Counted { inner, meter }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(1, n as u64);
        Ok(n)
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.meter.add(1, n as u64);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.meter.add(1, buf.len() as u64);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
