//! RFC 3339 times: what `--until` and the records' `created` fields hold.
//!
//! Hand-written (a few lines of calendar arithmetic) rather than a date
//! crate: only UTC seconds are needed. Every input gets a result or an
//! error, never a panic (a fuzz-ish test below feeds it odd strings).

use anyhow::Result;

/// Seconds since the epoch of an RFC 3339 time such as `2026-11-24T03:15:00Z`
/// or `2026-11-24T05:15:00.5+02:00` (fractions are cut to whole seconds).
pub fn parse_rfc3339(s: &str) -> Result<i64> {
    let bad = || anyhow::anyhow!("bad time {s:?}: expected RFC 3339 like 2026-11-24T03:15:00Z, or seconds,ordinal");
    let b = s.as_bytes();
    // Only ASCII from here on, so every byte index below is a char boundary.
    if !s.is_ascii()
        || b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64> {
        s.get(r).filter(|x| x.bytes().all(|b| b.is_ascii_digit())).and_then(|x| x.parse().ok()).ok_or_else(bad)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit()).then(|| x.parse::<i64>().ok()).flatten();
            let h = digits(&rest[1..3]).ok_or_else(bad)?;
            let m = digits(&rest[4..6]).ok_or_else(bad)?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// How many days `month` has in `year` (February 31 is not a date).
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 UTC time for seconds since the epoch, e.g. `2026-11-24T03:15:00Z`.
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Now, in seconds since the epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    format_rfc3339(now_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::records::Ts;

    #[test]
    fn rfc3339_round_trips() {
        for secs in [0, 951_782_400, 1_795_490_100, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(secs)).unwrap(), secs);
        }
        assert_eq!(format_rfc3339(1_795_490_100), "2026-11-24T03:15:00Z");
    }

    /// Odd inputs of every shape, built from pieces and by mutating valid
    /// times: the parsers may refuse them, never panic.
    #[test]
    fn odd_times_are_refused_never_a_panic() {
        let valid = ["2026-11-24T05:15:00.25+02:00", "2026-11-24T03:15:00Z", "1700000000,3", r#"{"t":5,"i":6}"#];
        let odd =
            ["é", "€", "😀", "\u{0}", " ", "+", "-", ":", ",", ".", "T", "Z", "9", "{", "\"", "\u{7f}", "\u{301}"];
        let mut inputs: Vec<String> = Vec::new();
        for text in valid {
            for (at, _) in text.char_indices().chain([(text.len(), ' ')]) {
                inputs.push(text[..at].to_string());
                // Each piece in place of 0 to 3 characters.
                for piece in odd {
                    for replaced in 0..=3 {
                        let rest: String = text[at..].chars().skip(replaced).collect();
                        inputs.push(format!("{}{piece}{rest}", &text[..at]));
                    }
                }
            }
        }
        let mut x: u32 = 2_463_534_242;
        for _ in 0..20_000 {
            let mut text = String::new();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            for _ in 0..(x % 32) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                text.push_str(odd[x as usize % odd.len()]);
            }
            inputs.push(text);
        }
        for input in &inputs {
            let parsed = input.parse::<Ts>();
            let _ = parse_rfc3339(input);
            if !input.is_ascii() {
                assert!(parsed.is_err(), "{input:?} parsed as {parsed:?}");
            }
        }
        assert!(parse_rfc3339("2026-11-24T03:15:00+0é:00").is_err());
        assert!(parse_rfc3339("2026-11-24T03:15:00+01:é").is_err());
        assert!(parse_rfc3339("2026-11-24T-3:15:00Z").is_err());
    }
}
