//! Throughput of the CRC-64/XZ that every stage computes over its stream:
//! `mb::crc64` (crc64fast, SIMD) side by side with the `crc` crate's default
//! byte-wise table and its slice-by-16 tables, on the same 256 MiB buffer. Run with
//! `cargo run --release --example crc-speed`.

use std::time::Instant;

fn main() {
    let data: Vec<u8> = (0..256u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mb = data.len() as f64 / 1e6;
    let bytewise = crc::Crc::<u64>::new(&crc::CRC_64_XZ);
    let sliced = crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_XZ);
    let timed = |f: &dyn Fn() -> u64| {
        let start = Instant::now();
        let crc = f();
        (crc, mb / start.elapsed().as_secs_f64())
    };
    println!(
        "| round | crc byte-wise (MB/s) | crc slice-by-16 (MB/s) | mb::crc64 (MB/s) | vs byte-wise | vs slice-by-16 |"
    );
    println!("|---|---|---|---|---|---|");
    for round in 0..3 {
        let (a, slow) = timed(&|| bytewise.checksum(&data));
        let (b, medium) = timed(&|| sliced.checksum(&data));
        let (c, fast) = timed(&|| mb::crc64::checksum(&data));
        assert!(a == b && b == c, "all compute the same CRC");
        println!("| {round} | {slow:.0} | {medium:.0} | {fast:.0} | {:.1}x | {:.1}x |", fast / slow, fast / medium);
    }
}
