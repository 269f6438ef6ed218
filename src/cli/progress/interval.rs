//! The `--progress` flag and `MB_PROGRESS`: how often progress prints, or never.

use std::time::Duration;

/// The `--progress` flag of the long stages.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub(crate) struct ProgressArgs {
    /// Progress on stderr every INTERVAL (500ms, 30s, 2m) when stderr is not a
    /// terminal, a live line when it is; `off` for none [default: $MB_PROGRESS, else 30s].
    /// Given here, it prints even with -q.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_interval)]
    pub progress: Option<Interval>,
}

/// How often progress prints, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interval {
    /// No progress.
    Off,
    /// A line every so often.
    Every(Duration),
}

/// Parses `off`, `500ms`, `30s`, `2m`, `1h` or plain seconds (`0.5`, `30`).
pub(crate) fn parse_interval(text: &str) -> Result<Interval, String> {
    let text = text.trim();
    if matches!(text.to_ascii_lowercase().as_str(), "off" | "no" | "none" | "0") {
        return Ok(Interval::Off);
    }
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("bad interval {text:?}: use 500ms, 30s, 2m, 1h or off");
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(bad()),
    };
    if !(0.01..=86_400.0).contains(&seconds) {
        return Err(format!("interval {text:?} is out of range: 10ms to 24h"));
    }
    Ok(Interval::Every(Duration::from_secs_f64(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("30s"), Ok(Interval::Every(Duration::from_secs(30))));
        assert_eq!(parse_interval("30"), Ok(Interval::Every(Duration::from_secs(30))));
        assert_eq!(parse_interval("500ms"), Ok(Interval::Every(Duration::from_millis(500))));
        assert_eq!(parse_interval("0.2"), Ok(Interval::Every(Duration::from_millis(200))));
        assert_eq!(parse_interval("2m"), Ok(Interval::Every(Duration::from_secs(120))));
        assert_eq!(parse_interval("1h"), Ok(Interval::Every(Duration::from_secs(3600))));
        assert_eq!(parse_interval("off"), Ok(Interval::Off));
        assert_eq!(parse_interval("0"), Ok(Interval::Off));
        for bad in ["", "fast", "1ms", "30x", "-1s", "25h", "1.2.3s"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
