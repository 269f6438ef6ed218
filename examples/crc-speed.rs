//! Throughput of the CRC-64/XZ that every stage computes over its stream:
//! `mb::crc64` (slice-by-16 tables) side by side with the `crc` crate's
//! default byte-wise table, on the same 256 MiB buffer. Run with
//! `cargo run --release --example crc-speed`.

use std::time::Instant;

fn main() {
    let data: Vec<u8> = (0..256u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mb = data.len() as f64 / 1e6;
    let bytewise = crc::Crc::<u64>::new(&crc::CRC_64_XZ);
    let mut results = Vec::new();
    for round in 0..3 {
        let start = Instant::now();
        let a = bytewise.checksum(&data);
        let bytewise_secs = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let b = mb::crc64::checksum(&data);
        let fast_secs = start.elapsed().as_secs_f64();
        assert_eq!(a, b, "both compute the same CRC");
        results.push((round, mb / bytewise_secs, mb / fast_secs));
    }
    println!("| round | crc crate default (MB/s) | mb::crc64 (MB/s) | ratio |");
    println!("|---|---|---|---|");
    for (round, slow, fast) in results {
        println!("| {round} | {slow:.0} | {fast:.0} | {:.1}x |", fast / slow);
    }
}
