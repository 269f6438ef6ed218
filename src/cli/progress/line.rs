//! The text of a progress line, per stage: what a user checks (documents per
//! collection, bytes, parts, the ratio) and a rate.

use std::fmt::Write;
use std::time::Duration;

use super::End;

/// Which stage's line: what its meters mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// mb-dump: documents and bytes per collection, then oplog entries.
    Dump,
    /// mb-apply: documents per collection, then oplog entries; the verbs say
    /// what happened to them (`restored`/`replayed`, `checked`, `written`).
    Apply { documents: &'static str, entries: &'static str },
    /// mb-pack: bytes in and out; `decompress` says which side is compressed.
    Pack { decompress: bool },
    /// mb-oss-put: bytes read; bytes and parts sent (`parts`: a multipart store).
    Put { parts: bool },
    /// mb-oss-get: bytes received, of the whole when known.
    Get,
}

/// One meter at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reading {
    pub count: u64,
    pub bytes: u64,
    pub done: bool,
}

/// A collection's meter as read, and as last shown.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// Its place among the stage's meters.
    pub index: usize,
    pub name: String,
    pub now: Reading,
    pub shown: Reading,
    /// Live: it changed in the last seconds.
    pub recent: bool,
}

/// Every meter summed, at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub docs: u64,
    pub doc_bytes: u64,
    pub entries: u64,
    pub entry_bytes: u64,
    pub in_count: u64,
    pub in_bytes: u64,
    pub out_count: u64,
    pub out_bytes: u64,
    /// The whole's size, once known.
    pub whole: Option<u64>,
}

/// Most collections named in one line; the rest are counted, and named later.
pub(crate) const MAX_ITEMS: usize = 8;

/// How a line is printed.
pub(crate) struct View {
    pub layout: Layout,
    pub elapsed: Duration,
    /// Set for the last line.
    pub end: Option<End>,
    /// A live line on a terminal (names the collections in progress) rather
    /// than a log line (names those that changed since the last line).
    pub live: bool,
}

impl View {
    /// The collections a line names: in a log, those changed since the last
    /// line (so each one's last mention is its final count); live, those in
    /// progress (changed in the last seconds, not finished).
    pub(crate) fn pick(&self, items: &[Item]) -> Vec<usize> {
        items
            .iter()
            .enumerate()
            .filter(|(_, item)| if self.live { !item.now.done && item.recent } else { item.now != item.shown })
            .map(|(i, _)| i)
            .collect()
    }

    /// The line, without the `prog: ` prefix: `now` against `before`, `span` earlier, for the rates.
    pub(crate) fn line(&self, now: &Totals, before: &Totals, span: Duration, items: &[&Item]) -> String {
        let secs = span.as_secs_f64().max(1e-3);
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
        let mut text = match self.end {
            None => format!("{}:", clock(self.elapsed)),
            Some(End::Done) => format!("done in {}:", clock(self.elapsed)),
            Some(End::Stopped) => format!("stopped after {}:", clock(self.elapsed)),
        };
        let average = if self.end.is_some() { " on average" } else { "" };
        match self.layout {
            Layout::Dump => {
                let bytes = now.doc_bytes + now.entry_bytes;
                let _ = write!(
                    text,
                    " {} documents, {}, {}/s{average}",
                    now.docs,
                    size(now.doc_bytes),
                    size(rate(bytes, before.doc_bytes + before.entry_bytes) as u64)
                );
                if now.entries > 0 {
                    let _ = write!(text, "; oplog {} entries {}", now.entries, size(now.entry_bytes));
                }
            }
            Layout::Apply { documents, entries } => {
                let _ = write!(text, " {} documents {documents}", now.docs);
                if now.entries == 0 {
                    let _ = write!(text, ", {:.0}/s{average}", rate(now.docs, before.docs));
                } else {
                    let _ = write!(
                        text,
                        "; oplog {} entries {entries}, {:.0}/s{average}",
                        now.entries,
                        rate(now.entries, before.entries)
                    );
                }
            }
            Layout::Pack { decompress } => {
                let (plain, packed, plain_before) = if decompress {
                    (now.out_bytes, now.in_bytes, before.out_bytes)
                } else {
                    (now.in_bytes, now.out_bytes, before.in_bytes)
                };
                let _ = write!(text, " {} in, {} out", size(now.in_bytes), size(now.out_bytes));
                // The compressor holds its first output back a while: no ratio yet.
                if packed > 0 {
                    let _ = write!(text, " ({} of the plain size)", percent(packed, plain));
                }
                let _ = write!(text, ", {}/s{average}", size(rate(plain, plain_before) as u64));
            }
            Layout::Put { parts } => {
                let _ = write!(
                    text,
                    " {} read, {}/s{average}",
                    size(now.in_bytes),
                    size(rate(now.in_bytes, before.in_bytes) as u64)
                );
                if parts {
                    let _ = write!(text, "; {} sent in {} part(s)", size(now.out_bytes), now.out_count);
                }
            }
            Layout::Get => {
                let _ = write!(text, " {}", size(now.in_bytes));
                if let Some(whole) = now.whole {
                    let _ = write!(text, " of {} ({})", size(whole), percent(now.in_bytes, whole));
                }
                let _ = write!(text, ", {}/s{average}", size(rate(now.in_bytes, before.in_bytes) as u64));
            }
        }
        let shown = items.len().min(MAX_ITEMS);
        for item in &items[..shown] {
            let _ = write!(text, "; {} {} documents", item.name, item.now.count);
            if self.layout == Layout::Dump {
                let _ = write!(text, " {}", size(item.now.bytes));
            }
            if item.now.done && !self.live {
                text.push_str(" done");
            }
        }
        if items.len() > shown {
            let _ = write!(text, "; {} more collection(s)", items.len() - shown);
        }
        text
    }
}

/// `12.3s`, `4m05s`, `2h03m`.
fn clock(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    match secs {
        0..60 => format!("{:.1}s", elapsed.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `512 B`, `1.5 KiB`, `300.0 MiB`, `1.2 GiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_clocks() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(300 << 20), "300.0 MiB");
        assert_eq!(size(5 << 40), "5.0 TiB");
        assert_eq!(clock(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(clock(Duration::from_secs(245)), "4m05s");
        assert_eq!(clock(Duration::from_secs(7380)), "2h03m");
    }

    #[test]
    fn a_dump_line_names_what_changed() {
        let item = |index, name: &str, count, done, shown_count| Item {
            index,
            name: name.into(),
            now: Reading { count, bytes: count * 100, done },
            shown: Reading { count: shown_count, bytes: shown_count * 100, done: done && count == shown_count },
            recent: count != shown_count,
        };
        let items = [item(0, "shop.a", 10, true, 10), item(1, "shop.b", 20, true, 5), item(2, "shop.c", 7, false, 0)];
        let view = View { layout: Layout::Dump, elapsed: Duration::from_secs(30), end: None, live: false };
        let picked: Vec<&Item> = view.pick(&items).into_iter().map(|i| &items[i]).collect();
        let now = Totals { docs: 37, doc_bytes: 3700, ..Totals::default() };
        let before = Totals { docs: 15, doc_bytes: 1500, ..Totals::default() };
        assert_eq!(
            view.line(&now, &before, Duration::from_secs(2), &picked),
            "30.0s: 37 documents, 3.6 KiB, 1.1 KiB/s; shop.b 20 documents 2.0 KiB done; shop.c 7 documents 700 B"
        );
        let live = View { live: true, ..view };
        assert_eq!(live.pick(&items), vec![2]);
    }

    #[test]
    fn pack_and_get_lines() {
        let view = View { layout: Layout::Pack { decompress: false }, elapsed: Duration::ZERO, end: None, live: false };
        let now = Totals { in_bytes: 4 << 20, out_bytes: 1 << 20, ..Totals::default() };
        assert_eq!(
            view.line(&now, &Totals::default(), Duration::from_secs(4), &[]),
            "0.0s: 4.0 MiB in, 1.0 MiB out (25.0% of the plain size), 1.0 MiB/s"
        );
        let view = View { layout: Layout::Get, end: Some(End::Done), ..view };
        let now = Totals { in_bytes: 1 << 20, whole: Some(4 << 20), ..Totals::default() };
        assert_eq!(
            view.line(&now, &Totals::default(), Duration::from_secs(1), &[]),
            "done in 0.0s: 1.0 MiB of 4.0 MiB (25.0%), 1.0 MiB/s on average"
        );
    }
}
