//! The end of an archive's data (its inserts, users and roles, indexes) and
//! of a restore: the last inserts, the whole checked, the replay's warnings,
//! and the conflicts that fail it (exit 4) unless --keep-existing.

use anyhow::{Context, Result};

use tokio::task::JoinSet;

use super::{count, ApplyOptions, Archive, Restore, Target};
use crate::cli::{conflict, integrity};
use crate::format::records::ApplyRecord;
use crate::mongo::restore::{merge_users_and_roles, Inserted};
use crate::{info, warn};

impl Restore<'_> {
    /// The input ended: waits for the last inserts, checks the whole, and
    /// reports what was restored (exit 4 on conflicts unless --keep-existing).
    pub(super) async fn finish(mut self, reader: tokio::task::JoinHandle<()>) -> Result<ApplyRecord> {
        reader.await.context("the stream reader panicked")?;
        while let Some(done) = self.tasks.join_next().await {
            count(&mut self.record, done.context("an insert task panicked")??);
        }
        if let Some(open) = self.archive {
            return Err(integrity(format!(
                "the stream ended before the manifest of the {} backup of {}: it was cut short",
                open.header.kind, open.header.created
            )));
        }
        if self.record.archives == 0 {
            return Err(integrity("the input holds no mb stream (it is empty)"));
        }
        if let Some(replayer) = &self.replayer {
            self.record.oplog = replayer.stats();
            if !replayer.out_of_scope().is_empty() {
                let by_db: Vec<String> = replayer.out_of_scope().iter().map(|(db, n)| format!("{db}: {n}")).collect();
                warn!(
                    "skipped {} oplog operation(s) outside the backup's scope (databases not backed up; {})",
                    self.record.oplog.out_of_scope,
                    by_db.join(", ")
                );
            }
            if replayer.open_transactions() > 0 {
                warn!(
                    "{} transaction(s) had not committed by the end point; they are not applied",
                    replayer.open_transactions()
                );
            }
        }
        if let Target::Dir(dir) = &mut self.target {
            dir.finish()?;
        }
        self.record.until = self.until;
        self.record.consistent_at = match (self.until, self.chain_end) {
            (Some(until), Some(end)) if until < end => {
                self.record.oplog.last.filter(|last| *last <= until).or(self.record.restorable_from)
            }
            (Some(until), Some(end)) if until > end => {
                return Err(anyhow::anyhow!(
                "the chain ends at {}, before --until {}: the data is the source's at its end, not at the point asked",
                crate::mongo::describe_ts(end),
                crate::mongo::describe_ts(until)
            ))
            }
            _ => self.chain_end,
        };
        if self.record.dry_run {
            info!(
                "checked {} stream(s): {} collections, {} documents; nothing written",
                self.record.archives, self.record.collections, self.record.documents
            );
        } else {
            let point = match (self.record.until, self.record.consistent_at) {
                (Some(until), Some(at)) => format!(
                    "; restored to --until {}: the data is the source's as of its last write at or before it, {}",
                    crate::mongo::describe_ts(until),
                    crate::mongo::describe_ts(at)
                ),
                (None, Some(at)) => format!("; consistent at {}", crate::mongo::describe_ts(at)),
                _ => String::new(),
            };
            info!(
                "restored {} collections, {} documents, {} oplog operations{point}",
                self.record.collections, self.record.documents, self.record.oplog.applied,
            );
            check_conflicts(&self.record, self.options.keep_existing)?;
        }
        Ok(self.record)
    }
}

/// Documents the target refused are loud: counted on stderr, and exit 4
/// unless the user asked to keep the target's documents.
fn check_conflicts(record: &ApplyRecord, keep_existing: bool) -> Result<()> {
    if record.duplicates > 0 {
        info!("{} document(s) were already there, identical", record.duplicates);
    }
    let conflicts = record.id_conflicts + record.unique_conflicts;
    if conflicts == 0 {
        return Ok(());
    }
    let what = format!(
        "{conflicts} document(s) of the backup were not restored: {} conflict with another document with the same _id, \
         {} with another unique index of the target",
        record.id_conflicts, record.unique_conflicts
    );
    if keep_existing {
        warn!("{what}; --keep-existing: the target's documents stay");
        return Ok(());
    }
    Err(conflict(format!(
        "{what}: the target differs from the backup (restore with --drop, or --keep-existing to keep the target's documents)"
    )))
}

/// Waits for every insert of the archive, then merges its users and roles
/// and builds its indexes: all before its oplog is replayed.
pub(super) async fn finish_data(
    tasks: &mut JoinSet<Result<Inserted>>,
    record: &mut ApplyRecord,
    archive: &mut Archive,
    target: &Target,
    options: &ApplyOptions,
) -> Result<()> {
    archive.data_done = true;
    while let Some(done) = tasks.join_next().await {
        count(record, done.context("an insert task panicked")??);
    }
    let Target::Server(client) = target else { return Ok(()) };
    merge_users_and_roles(client, &archive.header, options.drop, archive.authz).await?;
    if options.no_indexes || archive.indexes.is_empty() {
        return Ok(());
    }
    crate::mongo::restore::build_indexes(client, std::mem::take(&mut archive.indexes), options.parallel).await
}
