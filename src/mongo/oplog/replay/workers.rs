//! The connections that apply CRUD operations: one task per worker, each
//! applying its batches in the order it receives them, through `applyOps`
//! in non-atomic mode (`allowAtomic: false`), which the server runs under a
//! database lock in intent mode, so workers apply side by side (an atomic
//! `applyOps` takes the global write lock: one at a time).
//!
//! The reader keeps decoding while workers apply. Memory is bounded: per
//! worker, one batch being filled here, one queued (a channel of one) and
//! one being applied (twice: the command, and its copy kept to name a
//! failing operation), each of at most `batch_ops` operations and
//! `batch_bytes` bytes (the replayer gives each worker its share of 8 MiB,
//! at least 1 MiB). [`Workers::drain`] is the barrier: every batch is
//! sent and applied before it returns. A failure in any worker fails the
//! next call here and stops the others.

use anyhow::{anyhow, Context, Result};
use mongodb::bson::{doc, Document, RawArrayBuf, RawDocumentBuf};
use mongodb::Client;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::format::records::Ts;

/// Operations for one worker, in order.
#[derive(Default)]
struct Batch {
    ops: Vec<RawDocumentBuf>,
    bytes: usize,
    /// The first operation's entry, to name a failure.
    first: Option<Ts>,
}

enum Job {
    Apply(Batch),
    /// Answers with the count applied since the last `Sync`, once every job before it is done.
    Sync(oneshot::Sender<u64>),
}

/// A pool of workers, each on its own task (the driver pools connections).
pub(super) struct Workers {
    client: Client,
    count: usize,
    batch_ops: usize,
    batch_bytes: usize,
    /// Per worker: its queue and the batch being filled (empty until the first operation).
    lanes: Vec<(mpsc::Sender<Job>, Batch)>,
    tasks: JoinSet<Result<()>>,
    /// A worker failed: the run is over, nothing more is applied.
    stopped: bool,
}

impl Workers {
    pub(super) fn new(client: Client, count: usize, batch_ops: usize, batch_bytes: usize) -> Self {
        Workers {
            client,
            count: count.max(1),
            batch_ops,
            batch_bytes,
            lanes: Vec::new(),
            tasks: JoinSet::new(),
            stopped: false,
        }
    }

    /// Adds an operation to `worker`'s batch, sending the batch first when
    /// it is full (which waits while that worker's queue is full).
    pub(super) async fn queue(&mut self, worker: usize, op: RawDocumentBuf, ts: Ts) -> Result<()> {
        self.start()?;
        let size = op.as_bytes().len();
        let batch = &self.lanes[worker].1;
        if !batch.ops.is_empty() && (batch.ops.len() >= self.batch_ops || batch.bytes + size > self.batch_bytes) {
            self.send(worker).await?;
        }
        let batch = &mut self.lanes[worker].1;
        batch.first.get_or_insert(ts);
        batch.bytes += size;
        batch.ops.push(op);
        Ok(())
    }

    /// The barrier: sends every batch and waits until all are applied.
    /// Returns the count of operations applied since the last drain.
    pub(super) async fn drain(&mut self) -> Result<u64> {
        if self.stopped {
            return Err(anyhow!("the oplog workers stopped after an error"));
        }
        let mut replies = Vec::with_capacity(self.lanes.len());
        for worker in 0..self.lanes.len() {
            self.send(worker).await?;
            let (reply, answer) = oneshot::channel();
            if self.lanes[worker].0.send(Job::Sync(reply)).await.is_err() {
                return Err(self.failure().await);
            }
            replies.push(answer);
        }
        let mut applied = 0;
        for answer in replies {
            match answer.await {
                Ok(count) => applied += count,
                Err(_) => return Err(self.failure().await),
            }
        }
        Ok(applied)
    }

    /// Spawns the workers on first use.
    fn start(&mut self) -> Result<()> {
        if self.stopped {
            return Err(anyhow!("the oplog workers stopped after an error"));
        }
        if !self.lanes.is_empty() {
            return Ok(());
        }
        for _ in 0..self.count {
            let (sender, jobs) = mpsc::channel(1);
            self.tasks.spawn(work(self.client.clone(), jobs));
            self.lanes.push((sender, Batch::default()));
        }
        Ok(())
    }

    /// Sends `worker`'s batch, if it has one.
    async fn send(&mut self, worker: usize) -> Result<()> {
        // A worker that failed fails the run at once, not at the next barrier.
        if let Some(done) = self.tasks.try_join_next() {
            return Err(self.failed(done));
        }
        let (sender, batch) = &mut self.lanes[worker];
        if batch.ops.is_empty() {
            return Ok(());
        }
        if sender.send(Job::Apply(std::mem::take(batch))).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// The error of the worker that stopped; the others are stopped too.
    async fn failure(&mut self) -> anyhow::Error {
        match self.tasks.join_next().await {
            Some(done) => self.failed(done),
            None => anyhow!("the oplog workers are gone"),
        }
    }

    fn failed(&mut self, done: Result<Result<()>, tokio::task::JoinError>) -> anyhow::Error {
        self.tasks.abort_all();
        self.lanes.clear();
        self.stopped = true;
        match done {
            Ok(Err(err)) => err,
            Ok(Ok(())) => anyhow!("an oplog worker stopped early"),
            Err(err) => anyhow!("an oplog worker panicked: {err}"),
        }
    }
}

/// One worker: applies its batches in order until its queue closes.
async fn work(client: Client, mut jobs: mpsc::Receiver<Job>) -> Result<()> {
    let mut applied = 0;
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Apply(batch) => applied += apply_batch(&client, batch).await?,
            Job::Sync(reply) => {
                let _ = reply.send(std::mem::take(&mut applied));
            }
        }
    }
    Ok(())
}

/// One `applyOps` of a batch; when it fails, its operations one by one
/// (replaying is idempotent), to name the one that fails and why: a
/// non-atomic `applyOps` only says it "had one or more errors", an atomic one
/// of a single operation gives the server's reason.
///
/// Validators are bypassed: the source accepted these writes (some with
/// `bypassDocumentValidation`, which the oplog does not record).
async fn apply_batch(client: &Client, batch: Batch) -> Result<u64> {
    let count = batch.ops.len() as u64;
    let first = batch.first.unwrap_or_default();
    let mut ops = RawArrayBuf::new();
    for op in batch.ops {
        ops.push(op);
    }
    let mut command = RawDocumentBuf::new();
    command.append("applyOps", ops);
    command.append("allowAtomic", false);
    command.append("bypassDocumentValidation", true);
    let admin = client.database("admin");
    let Err(err) = admin.run_raw_command(command.clone()).await else { return Ok(count) };
    for op in command.get_array("applyOps")?.into_iter() {
        let op: Document = op?.as_document().context("an applyOps element is not a document")?.try_into()?;
        let ts = op.get_timestamp("ts").map(Ts::from).unwrap_or(first);
        let ns = op.get_str("ns").unwrap_or("?").to_string();
        admin
            .run_command(doc! {"applyOps": [op], "bypassDocumentValidation": true})
            .await
            .with_context(|| format!("applying oplog entry {ts} on {ns}"))?;
    }
    Err(err).with_context(|| format!("applying oplog entries from {first}"))
}
