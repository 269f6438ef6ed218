//! Part sizes for multipart uploads of a stream of unknown size.
//!
//! OSS allows at most 10,000 parts of 100 KiB..5 GiB (the last may be
//! smaller). A fixed part size caps the object at 10,000 x part size (the
//! PBM-1439 bug), so the size grows with the stream: part `n` (1-based) is
//! `base x 2^((n-1) / step)`, capped at 5 GiB. `step` is the largest number
//! of parts per doubling (at most 1000) that still lets 10,000 parts hold
//! [`MAX_STREAM`] bytes (48.8 TB): 108 for the default 8 MiB, 61 for 100 KiB.
//! Small streams keep small parts; memory is (parts in flight + 1) x the
//! current part size, so a 2 GiB stream peaks near 5 x 16 MiB.

/// Smallest part OSS accepts (except the last).
pub const MIN_PART: u64 = 100 << 10;
/// Largest part OSS accepts.
pub const MAX_PART: u64 = 5 << 30;
/// Most parts in one upload.
pub const MAX_PARTS: u32 = 10_000;
/// The stream size the schedule must hold: OSS's 48.8 TB object limit.
pub const MAX_STREAM: u64 = 48_800_000_000_000;
/// Default first part size.
pub const DEFAULT_PART: u64 = 8 << 20;

/// The part size schedule of one upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartSchedule {
    base: u64,
    step: u32,
}

impl PartSchedule {
    /// A schedule starting at `base` bytes (clamped to 100 KiB..5 GiB).
    pub fn new(base: u64) -> Self {
        let base = base.clamp(MIN_PART, MAX_PART);
        let step = (1..=1000).rev().find(|&step| Self { base, step }.capacity() >= MAX_STREAM).unwrap_or(1);
        Self { base, step }
    }

    /// The size of part `n` (1-based).
    pub fn part_size(&self, n: u32) -> u64 {
        let doublings = (n.max(1) - 1) / self.step;
        if doublings >= 40 {
            return MAX_PART;
        }
        self.base.saturating_mul(1u64 << doublings).min(MAX_PART)
    }

    /// Parts per doubling.
    pub fn step(&self) -> u32 {
        self.step
    }

    /// The most bytes 10,000 parts hold.
    pub fn capacity(&self) -> u64 {
        // Sum level by level: `step` parts share each size.
        let mut total = 0u64;
        let mut first = 1u32;
        while first <= MAX_PARTS {
            let count = self.step.min(MAX_PARTS - first + 1);
            total = total.saturating_add(self.part_size(first).saturating_mul(u64::from(count)));
            first += count;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_for(schedule: &PartSchedule, total: u64) -> (u32, u64, u64) {
        let (mut n, mut left, mut smallest, mut largest) = (0u32, total, u64::MAX, 0u64);
        while left > 0 {
            n += 1;
            let size = schedule.part_size(n).min(left);
            if left > size {
                smallest = smallest.min(size);
            }
            largest = largest.max(size);
            left -= size;
        }
        (n, smallest, largest)
    }

    #[test]
    fn a_48_8_tb_stream_fits_in_10000_parts() {
        for base in [MIN_PART, 1 << 20, DEFAULT_PART, 64 << 20, MAX_PART] {
            let schedule = PartSchedule::new(base);
            let (parts, smallest, largest) = parts_for(&schedule, MAX_STREAM);
            assert!(parts <= MAX_PARTS, "base {base}: {parts} parts");
            assert!(smallest >= MIN_PART && largest <= MAX_PART, "base {base}");
        }
        assert_eq!(PartSchedule::new(DEFAULT_PART).step(), 108);
        assert_eq!(PartSchedule::new(MIN_PART).step(), 61);
    }

    #[test]
    fn small_streams_keep_small_parts() {
        let schedule = PartSchedule::new(DEFAULT_PART);
        assert_eq!(schedule.part_size(1), DEFAULT_PART);
        assert_eq!(schedule.part_size(108), DEFAULT_PART);
        assert_eq!(schedule.part_size(109), 2 * DEFAULT_PART);
        let (_, _, largest) = parts_for(&schedule, 2 << 30);
        assert_eq!(largest, 16 << 20);
        assert_eq!(PartSchedule::new(1).part_size(1), MIN_PART);
        assert_eq!(schedule.part_size(10_000), MAX_PART);
    }
}
