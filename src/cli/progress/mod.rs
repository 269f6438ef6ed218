//! Progress on stderr for the long stages (`mb-dump`, `mb-apply`, `mb-pack`,
//! `mb-oss-put`, `mb-oss-get`).
//!
//! The work bumps [`Meter`]s: two relaxed atomic adds, no lock and no
//! allocation per document or block. A background thread reads them and
//! prints, in one of two ways:
//!
//! - stderr is not a terminal (cron logs, files, pipes): one line every
//!   interval (default 30 s), prefixed `prog: ` like every other message, and
//!   one last line when the stage ends, only if it printed one before: a run
//!   shorter than the interval prints nothing.
//! - stderr is a terminal: one live line, redrawn in place (`\r`, erase to
//!   the end of the line) at most 4 times a second from the first second on,
//!   cut to the terminal's width, and erased when the stage ends. The stages
//!   of a pipeline share the terminal: only one of them draws at a time, the
//!   one holding an advisory lock (`flock`) on the terminal; the others try
//!   again at each redraw, so when the one drawing ends the next takes over.
//!   Messages (`info!`, `warn!`, errors) erase the live line before they print.
//!
//! `--progress INTERVAL` (`500ms`, `30s`, `2m`; `off`) sets the interval;
//! `MB_PROGRESS` does the same for every stage of a pipeline. `-q` (or
//! `MB_LOG=quiet`) turns progress off unless `--progress` is given on the
//! command line: the scripts keep their stages quiet and still ask for it.

mod counted;
mod interval;
mod line;
mod terminal;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(crate) use self::counted::Counted;
pub(crate) use self::interval::{parse_interval, Interval, ProgressArgs};
pub(crate) use self::line::{size as human_size, Layout};
use self::line::{Item, Reading, Totals, View};
pub use self::terminal::message;
use super::{usage, verbosity};

/// The interval when neither `--progress` nor `MB_PROGRESS` says: one line
/// every 30 s keeps a cron log readable, and still shows a stuck stage.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// The live line on a terminal is redrawn at most this often...
const LIVE_PERIOD: Duration = Duration::from_millis(250);
/// ...and only once the stage has run this long: quick runs draw nothing.
const LIVE_DELAY: Duration = Duration::from_secs(1);
/// The live line names the collections that changed this recently.
const RECENT: Duration = Duration::from_secs(2);

/// A counter the work bumps: a count (documents, entries, parts) and bytes.
/// On its own cache line, so meters bumped from different threads do not
/// slow each other down.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Meter {
    count: AtomicU64,
    bytes: AtomicU64,
    done: AtomicBool,
}

impl Meter {
    /// Adds `count` items of `bytes` bytes in all.
    #[inline]
    pub fn add(&self, count: u64, bytes: u64) {
        self.count.fetch_add(count, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Marks the meter's item (a collection) finished.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    fn read(&self) -> Reading {
        Reading {
            count: self.count.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
        }
    }
}

/// What a meter counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Collection(String),
    Oplog,
    Input,
    Output,
}

/// A handle on a stage's progress, cheap to clone and pass down to the
/// work; the default one (and any with progress off) counts into meters
/// nobody reads.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Shared>>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Progress(on)" } else { "Progress(off)" })
    }
}

impl Progress {
    /// The meter of a collection (`db.coll`): documents and their bytes.
    pub(crate) fn collection(&self, ns: &str) -> Arc<Meter> {
        self.meter(ns, || Slot::Collection(ns.to_string()))
    }

    /// The meter of the oplog: entries and their bytes.
    pub(crate) fn oplog(&self) -> Arc<Meter> {
        self.meter("\0oplog", || Slot::Oplog)
    }

    /// The meter of what the stage reads (bytes).
    pub(crate) fn input(&self) -> Arc<Meter> {
        self.meter("\0input", || Slot::Input)
    }

    /// The meter of what the stage writes or sends (bytes; parts for mb-oss-put).
    pub(crate) fn output(&self) -> Arc<Meter> {
        self.meter("\0output", || Slot::Output)
    }

    /// The size of the whole, once known (mb-oss-get's object).
    pub(crate) fn set_total(&self, bytes: u64) {
        if let Some(shared) = &self.0 {
            shared.total.store(bytes, Ordering::Relaxed);
        }
    }

    fn meter(&self, key: &str, slot: impl FnOnce() -> Slot) -> Arc<Meter> {
        let Some(shared) = &self.0 else { return Arc::default() };
        let mut meters = lock(&shared.meters);
        if let Some(&i) = meters.index.get(key) {
            return meters.list[i].meter.clone();
        }
        let meter = Arc::<Meter>::default();
        let i = meters.list.len();
        meters.list.push(Entry { slot: slot(), meter: meter.clone(), shown: Reading::default(), changed: None });
        meters.index.insert(key.to_string(), i);
        meter
    }
}

struct Shared {
    layout: Layout,
    meters: Mutex<Meters>,
    /// The whole's size in bytes; `u64::MAX` while unknown.
    total: AtomicU64,
    /// Set when the stage ends: how.
    stop: Mutex<Option<End>>,
    wake: Condvar,
}

#[derive(Default)]
struct Meters {
    list: Vec<Entry>,
    index: HashMap<String, usize>,
}

struct Entry {
    slot: Slot,
    meter: Arc<Meter>,
    /// What the last printed line said of it (live: the last redraw saw).
    shown: Reading,
    /// Live: when a redraw last saw it change.
    changed: Option<Instant>,
}

/// How a stage ended, for its last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Done,
    Stopped,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stage's progress printer: a thread from [`Reporter::start`] to
/// [`Reporter::finish`] (or drop, on an error path).
pub(crate) struct Reporter {
    progress: Progress,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts printing progress for a stage, as its flags, `MB_PROGRESS`,
    /// the verbosity and stderr say. Call it after the verbosity is set.
    pub(crate) fn start(args: &ProgressArgs, layout: Layout) -> anyhow::Result<Reporter> {
        let env = match std::env::var("MB_PROGRESS") {
            Ok(text) if !text.trim().is_empty() => {
                Some(parse_interval(&text).map_err(|e| usage(format!("MB_PROGRESS: {e}")))?)
            }
            _ => None,
        };
        let interval = match (args.progress, env) {
            (Some(given), _) => given,
            _ if verbosity() == 0 => Interval::Off,
            (None, from_env) => from_env.unwrap_or(Interval::Every(DEFAULT_INTERVAL)),
        };
        let Interval::Every(interval) = interval else {
            return Ok(Reporter { progress: Progress(None), thread: None });
        };
        let shared = Arc::new(Shared {
            layout,
            meters: Mutex::default(),
            total: AtomicU64::new(u64::MAX),
            stop: Mutex::new(None),
            wake: Condvar::new(),
        });
        let live = terminal::is_live();
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || if live { report_live(&for_thread, interval) } else { report_lines(&for_thread, interval) })
            .ok();
        Ok(Reporter { progress: Progress(thread.as_ref().map(|_| shared)), thread })
    }

    /// The handle to pass to the work.
    pub(crate) fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// The stage is done: prints the last line (if any was printed) or
    /// erases the live line, and stops the thread.
    pub(crate) fn finish(mut self) {
        self.stop(End::Done);
    }

    fn stop(&mut self, end: End) {
        let Some(thread) = self.thread.take() else { return };
        if let Some(shared) = &self.progress.0 {
            *lock(&shared.stop) = Some(end);
            shared.wake.notify_all();
        }
        let _ = thread.join();
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop(End::Stopped);
    }
}

impl Shared {
    /// Sleeps until `deadline` or the stage's end; returns how it ended, if it did.
    fn sleep_until(&self, deadline: Instant) -> Option<End> {
        let mut stop = lock(&self.stop);
        loop {
            if let Some(end) = *stop {
                return Some(end);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            stop = self.wake.wait_timeout(stop, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Reads every meter: the totals, and each collection's. A live redraw
    /// (`live_at`) notes which collections changed, and when.
    fn read(&self, live_at: Option<Instant>) -> (Totals, Vec<Item>) {
        let mut meters = lock(&self.meters);
        let mut totals = Totals::default();
        let mut items = Vec::new();
        for (index, entry) in meters.list.iter_mut().enumerate() {
            let now = entry.meter.read();
            match &entry.slot {
                Slot::Collection(ns) => {
                    totals.docs += now.count;
                    totals.doc_bytes += now.bytes;
                    let mut recent = false;
                    if let Some(at) = live_at {
                        if now != entry.shown {
                            (entry.shown, entry.changed) = (now, Some(at));
                        }
                        recent = entry.changed.is_some_and(|t| at - t < RECENT);
                    }
                    items.push(Item { index, name: ns.clone(), now, shown: entry.shown, recent });
                }
                Slot::Oplog => (totals.entries, totals.entry_bytes) = (now.count, now.bytes),
                Slot::Input => (totals.in_count, totals.in_bytes) = (now.count, now.bytes),
                Slot::Output => (totals.out_count, totals.out_bytes) = (now.count, now.bytes),
            }
        }
        let total = self.total.load(Ordering::Relaxed);
        totals.whole = (total != u64::MAX).then_some(total);
        (totals, items)
    }

    /// A log line: the collections it names, recorded as shown.
    fn line(&self, view: &View, before: &Totals, span: Duration) -> (String, Totals) {
        let (totals, items) = self.read(None);
        let picked: Vec<&Item> = view.pick(&items).into_iter().map(|i| &items[i]).collect();
        let text = view.line(&totals, before, span, &picked);
        let named = picked.len().min(line::MAX_ITEMS);
        let mut meters = lock(&self.meters);
        for item in &picked[..named] {
            meters.list[item.index].shown = item.now;
        }
        (format!("{}: {text}", super::program()), totals)
    }
}

/// Not a terminal: a line per interval, and a last one if any was printed.
fn report_lines(shared: &Shared, interval: Duration) {
    let started = Instant::now();
    let (mut since, mut before) = (started, Totals::default());
    let mut printed = false;
    let mut next = started + interval;
    let end = loop {
        if let Some(end) = shared.sleep_until(next) {
            break end;
        }
        let now = Instant::now();
        let view = View { layout: shared.layout, elapsed: now - started, end: None, live: false };
        let (text, totals) = shared.line(&view, &before, now - since);
        message(format_args!("{text}"));
        printed = true;
        (since, before) = (now, totals);
        next = (next + interval).max(now);
    };
    if printed {
        let elapsed = started.elapsed();
        let view = View { layout: shared.layout, elapsed, end: Some(end), live: false };
        message(format_args!("{}", shared.line(&view, &Totals::default(), elapsed).0));
    }
}

/// A terminal: a live line while this stage holds the terminal, erased at the end.
fn report_live(shared: &Shared, interval: Duration) {
    let started = Instant::now();
    let period = interval.min(LIVE_PERIOD);
    let mut terminal = terminal::Terminal::open();
    // The rate over the last two seconds or so: steadier than per redraw.
    let mut samples: std::collections::VecDeque<(Instant, Totals)> = std::collections::VecDeque::new();
    let mut next = started + interval.min(LIVE_DELAY);
    while shared.sleep_until(next).is_none() {
        let now = Instant::now();
        let (totals, items) = shared.read(Some(now));
        while samples.len() > 1 && now - samples[1].0 >= Duration::from_secs(2) {
            samples.pop_front();
        }
        let (since, before) = samples.front().map_or((started, Totals::default()), |&(t, b)| (t, b));
        samples.push_back((now, totals));
        if terminal.own() {
            let view = View { layout: shared.layout, elapsed: now - started, end: None, live: true };
            let picked: Vec<&Item> = view.pick(&items).into_iter().map(|i| &items[i]).collect();
            terminal.draw(&format!("{}: {}", super::program(), view.line(&totals, &before, now - since, &picked)));
        }
        next = (next + period).max(now);
    }
    terminal.erase();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_are_shared_by_name() {
        let shared = Arc::new(Shared {
            layout: Layout::Dump,
            meters: Mutex::default(),
            total: AtomicU64::new(u64::MAX),
            stop: Mutex::new(None),
            wake: Condvar::new(),
        });
        let progress = Progress(Some(shared.clone()));
        progress.collection("shop.orders").add(2, 100);
        progress.collection("shop.orders").add(1, 50);
        progress.collection("shop.items").add(1, 10);
        progress.oplog().add(5, 500);
        let (totals, items) = shared.read(None);
        assert_eq!((totals.docs, totals.doc_bytes, totals.entries), (4, 160, 5));
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].now.count, items[0].now.bytes), (3, 150));
        // Off: the meters count, nobody reads them.
        Progress::default().collection("a.b").add(1, 1);
    }
}
