//! `mb-pack`: compress (zstd or gzip) or decompress a stream, using every
//! core to compress. Its help text is on `Args`.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;

use crate::cli::io::{create_output_file, open_input_file};
use crate::cli::progress::{Counted, Layout, ProgressArgs, Reporter};
use crate::cli::{self, usage};
use crate::pack::seekable::SeekableOptions;
use crate::pack::{
    compress, compress_seekable, compress_zstd, decompress, Codec, CompressOptions, DecompressOptions, ZstdOptions,
};

/// zstd- or gzip-compress stdin to stdout on all cores, or decompress with -d.
///
/// Compresses INPUT (default: stdin) to --output (default: stdout) as zstd
/// (the default) or gzip. Either way memory stays bounded whatever the stream
/// size, and the bytes written depend only on the codec, level and block
/// size, never on the thread count.
///
/// zstd: one zstd frame with a content checksum, compressed by libzstd's own
/// worker threads; `zstd -d` and `tar --zstd` read it. Memory grows with the
/// level's window times the threads: ~56MiB at level 3 on 2 threads, ~360MiB
/// at level 19.
///
/// gzip: the input is cut into blocks that worker threads deflate in
/// parallel, each block primed with the last 32KiB of the one before (as pigz
/// does), so the output is one ordinary gzip member that any gzip reader
/// accepts. At most about 2 x threads blocks are in memory. `-1` .. `-9` set
/// the level, as in gzip; --gzip is mongodump's name for --codec gzip.
///
/// --seekable (for mb-tar/1 streams; what mb-backup writes): a new zstd
/// frame (gzip member) wherever the header, a collection's entries, the
/// oplog or the manifest begin, and every 8MiB, compressed one per thread;
/// then the block index (mb-index/1) in zstd skippable frames (empty gzip
/// members) at the end. `zstd -d`, `gzip -d` and `tar` read it as before;
/// `mb-oss-get --ns-include` reads only the blocks some collections need
/// (docs/FORMAT.md). Input that is not an
/// mb-tar/1 stream is refused (exit 3); one cut short (its writer failed) is
/// compressed as it came, as any compressor does.
///
/// With -d, decompresses gzip and zstd, telling them apart by their magic
/// bytes at the start of every member: concatenated members (`cat a.gz b.zst`)
/// are decompressed one after another. The input must be gzip or zstd from
/// its first byte to its last: an empty input, a truncated stream, a checksum
/// or length mismatch, bad compressed data, a zstd window above 128MiB and
/// trailing bytes are all integrity errors (exit 3). Output already written
/// is not taken back: trust the exit status. With -o, a partial output file is
/// removed.
///
/// Exit status: 0 success; 1 failure (I/O: a full disk, a closed pipe, a
/// missing input file); 2 usage (bad flags, a level out of the codec's range,
/// compressed output to a terminal); 3 integrity (the -d input is empty, not
/// gzip or zstd, truncated, corrupt or has trailing data).
#[derive(Parser, Debug)]
#[command(name = "mb-pack", after_help = EXAMPLES)]
pub(crate) struct Args {
    /// File to read; `-` or nothing means stdin.
    pub input: Option<PathBuf>,

    /// File to write; `-` or nothing means stdout.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Decompress instead of compressing.
    #[arg(short, long)]
    pub decompress: bool,

    /// The codec: zstd or gzip.
    #[arg(long, value_enum, default_value_t = Codec::Zstd, conflicts_with = "decompress")]
    pub codec: Codec,

    /// Same as --codec gzip (mongodump's --gzip).
    #[arg(long, conflicts_with_all = ["codec", "decompress"])]
    pub gzip: bool,

    /// Independent blocks per collection and a block index (mb-tar/1 input).
    #[arg(long, conflicts_with = "decompress")]
    pub seekable: bool,

    /// Compression level: zstd 1 to 19 [default: 3], gzip 1 to 9 [default: 6].
    #[arg(short, long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=crate::pack::ZSTD_MAX_LEVEL as i64),
          conflicts_with = "decompress")]
    pub level: Option<u32>,

    /// Threads deflating blocks [default: the number of cores].
    #[arg(short = 'j', long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

    /// gzip: bytes per block, 32KiB to 256MiB.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_block_size,
          conflicts_with = "decompress")]
    pub block_size: usize,

    #[command(flatten)]
    pub progress: ProgressArgs,

    #[command(flatten)]
    pub log: crate::cli::LogArgs,
}

const EXAMPLES: &str = "Examples:
  # A dump compressed with zstd on every core:
  mb-dump --db shop | mb-pack > shop.tar.zst
  # gzip at level 9 into a file (a partial file is removed on failure):
  mb-pack --codec gzip -9 -o shop.tar.gz shop.tar
  # A dump as seekable zstd: one collection can later be read alone:
  mb-dump --db shop | mb-pack --seekable > shop.tar.zst
  # Decompress whatever it is (gzip, zstd, or both concatenated):
  mb-pack -d shop.tar.zst > shop.tar";

/// Runs `mb-pack` with the process's arguments.
pub fn run() -> anyhow::Result<()> {
    let mut args: Args = cli::parse_args_from(gzip_style_levels(std::env::args_os()))?;
    args.log.apply();
    if args.gzip {
        args.codec = Codec::Gzip;
    }
    let threads = args.threads.map_or_else(default_threads, |n| n as usize);
    let input_name = display_name(args.input.as_deref(), "stdin");
    let output_name = display_name(args.output.as_deref(), "stdout");
    let to_file = !cli::io::is_std(args.output.as_deref());
    if args.codec == Codec::Gzip && args.level.is_some_and(|l| l > 9) {
        return Err(usage("gzip levels are 1 to 9"));
    }

    if !args.decompress && !to_file && std::io::stdout().is_terminal() {
        // As gzip: binary on a terminal is never what was meant.
        return Err(usage("refusing to write compressed data to a terminal (redirect stdout or use -o)"));
    }
    let reporter = Reporter::start(&args.progress, Layout::Pack { decompress: args.decompress })?;
    let progress = reporter.progress();
    let input: Box<dyn Read + Send> = Box::new(Counted::new(open_input_file(args.input.as_deref())?, progress.input()));
    let mut output: Box<dyn Write + Send> =
        Box::new(Counted::new(create_output_file(args.output.as_deref())?, progress.output()));

    let result = if args.decompress {
        let opts = DecompressOptions { threaded: threads > 1, input_name: input_name.clone(), output_name };
        decompress(input, &mut output, &opts)
            .map(|s| {
                crate::debug!("decompressed {} bytes in {} member(s) to {} bytes", s.bytes_in, s.members, s.bytes_out);
            })
            .with_context(|| format!("decompressing {input_name}"))
    } else if args.seekable {
        let level = args.level.unwrap_or(if args.codec == Codec::Zstd { 3 } else { 6 });
        let opts = SeekableOptions { codec: args.codec, level, threads, input_name: input_name.clone(), output_name };
        compress_seekable(input, &mut output, &opts)
            .map(|s| crate::debug!("compressed {} bytes to {} bytes, seekable", s.bytes_in, s.bytes_out))
            .with_context(|| format!("compressing {input_name}"))
    } else if args.codec == Codec::Zstd {
        let opts = ZstdOptions { level: args.level.unwrap_or(3), threads, input_name: input_name.clone(), output_name };
        compress_zstd(input, &mut output, &opts)
            .map(|s| crate::debug!("compressed {} bytes to {} bytes of zstd", s.bytes_in, s.bytes_out))
            .with_context(|| format!("compressing {input_name}"))
    } else {
        let opts = CompressOptions {
            level: args.level.unwrap_or(6),
            threads,
            block_size: args.block_size,
            input_name: input_name.clone(),
            output_name,
        };
        compress(input, &mut output, &opts)
            .map(|s| {
                crate::debug!("compressed {} bytes to {} bytes with {} thread(s)", s.bytes_in, s.bytes_out, threads);
            })
            .with_context(|| format!("compressing {input_name}"))
    };
    if result.is_ok() {
        reporter.finish();
    }
    if result.is_err() && to_file {
        // A partial file would look like a finished one later; remove it, as gzip does.
        drop(output);
        if let Some(path) = &args.output {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

/// Rewrites gzip's `-1` .. `-9` into `--level=N`, before any `--`.
fn gzip_style_levels(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut seen_dashdash = false;
    args.into_iter()
        .map(|arg| {
            if arg == "--" {
                seen_dashdash = true;
            }
            match arg.to_str() {
                Some(s) if !seen_dashdash && s.len() == 2 && s.starts_with('-') => match s.as_bytes()[1] {
                    d @ b'1'..=b'9' => OsString::from(format!("--level={}", d as char)),
                    _ => arg,
                },
                _ => arg,
            }
        })
        .collect()
}

/// A block size: `1MiB`, `512KiB`, `1048576` (see [`crate::cli::parse_size`]), 32KiB to 256MiB.
fn parse_block_size(text: &str) -> Result<usize, String> {
    let size = crate::cli::parse_size(text)?;
    // Below the 32 KiB deflate window the priming dictionary would exceed the block.
    if !(32 << 10..=256 << 20).contains(&size) {
        return Err(format!("block size must be 32KiB to 256MiB, not {text}"));
    }
    Ok(size as usize)
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn display_name(path: Option<&Path>, std_name: &str) -> String {
    if cli::io::is_std(path) {
        std_name.to_string()
    } else {
        path.map(|p| p.display().to_string()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn digit_flags_become_levels() {
        assert_eq!(gzip_style_levels(args(&["mb-pack", "-9", "-j", "2"])), args(&["mb-pack", "--level=9", "-j", "2"]));
        assert_eq!(
            gzip_style_levels(args(&["mb-pack", "-d", "-0", "--", "-5"])),
            args(&["mb-pack", "-d", "-0", "--", "-5"])
        );
    }

    #[test]
    fn parses_flags() {
        let a = Args::try_parse_from(gzip_style_levels(args(&[
            "mb-pack",
            "-3",
            "-j2",
            "--block-size",
            "64K",
            "in",
            "-o",
            "out",
        ])))
        .unwrap();
        assert_eq!((a.level, a.threads, a.block_size), (Some(3), Some(2), 64 << 10));
        assert_eq!(a.input.as_deref(), Some(Path::new("in")));
        assert_eq!(a.output.as_deref(), Some(Path::new("out")));
        let a = Args::try_parse_from(args(&["mb-pack"])).unwrap();
        assert_eq!((a.codec, a.level, a.block_size, a.decompress), (Codec::Zstd, None, 1 << 20, false));
        let a = Args::try_parse_from(args(&["mb-pack", "--codec", "gzip", "-l", "9"])).unwrap();
        assert_eq!((a.codec, a.level), (Codec::Gzip, Some(9)));
        for bad in [
            &["mb-pack", "-l", "0"][..],
            &["mb-pack", "-l", "20"],
            &["mb-pack", "--codec", "lz4"],
            &["mb-pack", "-d", "--codec", "gzip"],
            &["mb-pack", "-j", "0"],
            &["mb-pack", "-d", "-l", "3"],
        ] {
            assert!(Args::try_parse_from(args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn block_sizes() {
        assert_eq!(parse_block_size("1M"), Ok(1 << 20));
        assert_eq!(parse_block_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_block_size("128k"), Ok(128 << 10));
        assert_eq!(parse_block_size("65536"), Ok(65536));
        assert_eq!(parse_block_size("256M"), Ok(256 << 20));
        for bad in ["", "1", "16K", "257M", "1G", "1T", "M", "-1M", "99999999999999999999"] {
            assert!(parse_block_size(bad).is_err(), "{bad}");
        }
    }
}
