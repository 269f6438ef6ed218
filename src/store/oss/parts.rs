//! Part sizes for multipart uploads of a stream of unknown size.
//!
//! OSS allows at most 10,000 parts of 100 KiB..5 GiB (the last may be
//! smaller). A fixed part size caps the object at 10,000 x part size (the
//! PBM-1439 bug), so the size grows with the stream: part `n` (1-based) is
//! `base x 2^((n-1) / step)`, capped at 5 GiB. `step` is the largest number
//! of parts per doubling (at most 1000) that still lets 10,000 parts hold
//! [`MAX_STREAM`] bytes (48.8 TB): 108 for the default 8 MiB, 61 for 100 KiB.
//! Small streams keep small parts.
//!
//! Memory: parts are held in memory only while (parts in flight + 1) x the
//! part size fits [`MEMORY_BUDGET`]; larger parts are staged in an unlinked
//! temporary file and streamed from it ([`plan`]), so the process stays
//! under 256 MiB whatever the stream's size. `--expected-size` picks a
//! larger first part up front ([`PartSchedule::for_expected`]).

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

/// Bytes of part buffers one upload may hold in memory at once.
pub const MEMORY_BUDGET: u64 = 128 << 20;
/// Memory a staged part costs while it uploads (stream chunks, HTTP buffers).
pub const STAGED_PART_MEMORY: u64 = 1 << 20;
/// The buffer a part is staged through.
pub const STAGING_BUFFER: u64 = 1 << 20;

/// How parts of one size are held and how many upload at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartPlan {
    /// In memory (else staged in a temporary file).
    pub in_memory: bool,
    /// Parts uploading at once.
    pub in_flight: usize,
}

/// The plan for parts of `part_size` bytes with `parallel` wanted at once.
pub fn plan(part_size: u64, parallel: usize) -> PartPlan {
    let parallel = parallel.max(1);
    if part_size <= MEMORY_BUDGET / 4 {
        // Those in flight plus the one being read.
        let fits = (MEMORY_BUDGET / part_size.max(1)).saturating_sub(1).max(1);
        PartPlan { in_memory: true, in_flight: parallel.min(fits as usize) }
    } else {
        PartPlan { in_memory: false, in_flight: parallel.min((MEMORY_BUDGET / STAGED_PART_MEMORY) as usize) }
    }
}

impl PartPlan {
    /// The most part memory this plan holds with parts of `part_size`.
    pub fn memory(&self, part_size: u64) -> u64 {
        if self.in_memory {
            (self.in_flight as u64 + 1) * part_size
        } else {
            self.in_flight as u64 * STAGED_PART_MEMORY + STAGING_BUFFER
        }
    }
}

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

    /// A schedule for a stream of about `expected` bytes: the first part is
    /// large enough that the stream fits in about 9,000 parts of that size;
    /// the sizes still grow, so a stream larger than announced also fits.
    pub fn for_expected(base: u64, expected: Option<u64>) -> Self {
        let wanted = expected.map_or(0, |size| size.div_ceil(9_000).next_multiple_of(1 << 20));
        Self::new(base.max(wanted))
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

    /// Walks the schedule over a stream of `total` bytes: part count, part
    /// sizes, and the memory the plan holds for each part.
    fn check_stream(schedule: &PartSchedule, total: u64, parallel: usize) {
        let (mut n, mut left) = (0u32, total);
        while left > 0 {
            n += 1;
            let size = schedule.part_size(n);
            let this = size.min(left);
            assert!(size <= MAX_PART, "part {n}: {size}");
            assert!(this >= MIN_PART || this == left, "part {n}: {this} is too small and not the last");
            let plan = plan(size, parallel);
            assert!(plan.memory(size) <= MEMORY_BUDGET, "part {n} of {size}: {plan:?}");
            assert!(plan.in_flight >= 1);
            left -= this;
        }
        assert!(n <= MAX_PARTS, "{total} bytes took {n} parts");
    }

    #[test]
    fn one_tib_and_48_8_tb_fit_the_part_limits_and_the_memory_bound() {
        const TIB: u64 = 1 << 40;
        for total in [TIB, MAX_STREAM] {
            for parallel in [1, 4, 64] {
                for base in [MIN_PART, DEFAULT_PART, 64 << 20, MAX_PART] {
                    check_stream(&PartSchedule::new(base), total, parallel);
                }
                // A right hint, a hint far too small, one far too large.
                for hint in [total, total / 1000, total * 4] {
                    check_stream(&PartSchedule::for_expected(DEFAULT_PART, Some(hint)), total, parallel);
                }
            }
        }
        // The hint makes fewer, larger parts from the start.
        let hinted = PartSchedule::for_expected(DEFAULT_PART, Some(TIB));
        assert_eq!(hinted.part_size(1), 117 << 20);
        assert!(!plan(hinted.part_size(1), 4).in_memory, "117 MiB parts are staged in a file");
        assert_eq!(PartSchedule::for_expected(DEFAULT_PART, Some(1 << 30)), PartSchedule::new(DEFAULT_PART));
    }

    #[test]
    fn parts_stay_in_memory_only_while_they_fit() {
        assert_eq!(plan(DEFAULT_PART, 4), PartPlan { in_memory: true, in_flight: 4 });
        assert_eq!(plan(DEFAULT_PART, 64), PartPlan { in_memory: true, in_flight: 15 });
        assert_eq!(plan(32 << 20, 4), PartPlan { in_memory: true, in_flight: 3 });
        assert_eq!(plan(64 << 20, 4), PartPlan { in_memory: false, in_flight: 4 });
        assert_eq!(plan(MAX_PART, 64).memory(MAX_PART), 65 << 20);
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
