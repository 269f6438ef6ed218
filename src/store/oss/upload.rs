//! The put path of the OSS store.
//!
//! The caller's thread reads the stream one part at a time (computing the
//! CRC-64 as it goes) while parts upload on the runtime. A stream that fits
//! in the first part is one PutObject. Parts are held in memory, or staged
//! in an unlinked temporary file when memory would exceed the bound
//! ([`super::parts::plan`]); either way a part can be resent.
//!
//! Verification comes from the answers, not a later HEAD (which could see
//! another writer's object): the PutObject/Complete answer's CRC-64 must be
//! the CRC-64 of the bytes read. If it is not, the object is deleted only if
//! its ETag is still the one this put wrote. On any failure the multipart
//! upload is aborted; SIGTERM, SIGINT and SIGHUP abort it too
//! ([`super::signals`]).

use std::io::Read;

use anyhow::{bail, Context, Result};
use tokio::task::JoinSet;

use super::body::{read_to_file, read_to_memory, PartData};
use super::client::{ObjectOptions, PutAnswer};
use super::parts::{plan, PartSchedule, MAX_PARTS};
use super::{signals, OssError, OssStore};
use crate::crc64::Crc64;
use crate::store::{exists_error, PutOptions, PutResult, Store};

impl OssStore {
    /// Reads part `n` of `schedule`: in memory or staged, per the plan.
    fn read_part(&self, reader: &mut dyn Read, schedule: &PartSchedule, n: u32, crc: &mut Crc64) -> Result<PartData> {
        let size = schedule.part_size(n);
        if plan(size, self.tuning.parallel).in_memory {
            read_to_memory(reader, size, crc)
        } else {
            read_to_file(reader, size, crc, &self.tuning.temp_dir)
        }
    }

    pub(super) fn put_stream(&self, key: &str, reader: &mut dyn Read, options: &PutOptions) -> Result<PutResult> {
        let forbid = !options.overwrite;
        // Fails fast before reading the stream; x-oss-forbid-overwrite on the
        // final request closes the race with another writer.
        if forbid && self.head(key)?.is_some() {
            return Err(exists_error(&self.location(), key));
        }
        let object_options = ObjectOptions {
            forbid_overwrite: forbid,
            storage_class: options.storage_class.clone(),
            sse: options.sse.clone(),
            sse_key_id: options.sse_key_id.clone(),
        };
        let schedule = PartSchedule::for_expected(self.tuning.part_size, self.tuning.expected_size);
        let mut crc = Crc64::new();
        let first = self.read_part(reader, &schedule, 1, &mut crc)?;
        if first.len() < schedule.part_size(1) {
            return self.simple_put(key, first, &crc, &object_options);
        }
        let second = self.read_part(reader, &schedule, 2, &mut crc)?;
        if second.is_empty() {
            return self.simple_put(key, first, &crc, &object_options);
        }
        let upload_id = self
            .rt
            .block_on(self.client.initiate_multipart(&self.bucket, key, &object_options))
            .map_err(|e| self.map_exists(e, key))?;
        crate::debug!("multipart upload {upload_id} of {key}");
        let _watch = signals::watch(&self.client, self.rt.handle(), &self.bucket, key, &upload_id);
        let result =
            self.upload_parts(key, &upload_id, &schedule, vec![first, second], reader, &mut crc).and_then(|parts| {
                let expect = (crc.len(), crc.finish());
                let answer = self
                    .rt
                    .block_on(self.client.complete_multipart(&self.bucket, key, &upload_id, &parts, forbid, expect))
                    .map_err(|e| self.map_exists(e, key))?;
                Ok((parts.len() as u32, answer))
            });
        match result {
            Ok((count, answer)) => self.checked(key, &crc, answer, count),
            Err(err) => {
                if let Err(abort_err) = self.rt.block_on(self.client.abort_multipart(&self.bucket, key, &upload_id)) {
                    crate::warn!(
                        "could not abort multipart upload {upload_id} of {key}: {}",
                        crate::cli::one_line(&abort_err)
                    );
                }
                Err(err)
            }
        }
    }

    fn simple_put(&self, key: &str, data: PartData, crc: &Crc64, options: &ObjectOptions) -> Result<PutResult> {
        let md5 = data.md5();
        let sent = data.len();
        let answer = match self.rt.block_on(self.client.put_object(&self.bucket, key, data, options)) {
            Ok(answer) => {
                self.tuning.progress.output().add(1, sent);
                answer
            }
            Err(err) => {
                let exists = err.chain().any(|c| c.downcast_ref::<OssError>().is_some_and(OssError::is_already_exists));
                // A retry after a lost answer finds our own object: same MD5
                // (the ETag of a simple put), size and CRC-64 mean it is ours.
                let ours = exists
                    && self.head(key).ok().flatten().is_some_and(|head| {
                        head.size == crc.len()
                            && head.crc64.is_none_or(|c| c == crc.finish())
                            && head.etag.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(&hex(&md5)))
                    });
                if !ours {
                    return Err(self.map_exists(err, key));
                }
                let head = self.head(key)?.context("the object vanished")?;
                PutAnswer { etag: head.etag, crc64: head.crc64 }
            }
        };
        self.checked(key, crc, answer, 1)
    }

    /// Checks the answer's CRC-64 against the bytes read. On a mismatch the
    /// object is deleted, but only while its ETag is the one this put wrote.
    fn checked(&self, key: &str, crc: &Crc64, answer: PutAnswer, parts: u32) -> Result<PutResult> {
        if let Some(stored) = answer.crc64 {
            if stored != crc.finish() {
                let removed = match self.head(key) {
                    Ok(Some(head)) if head.etag.is_some() && head.etag == answer.etag => match self.delete(key) {
                        Ok(()) => "it was deleted".to_string(),
                        Err(err) => format!("deleting it failed: {}", crate::cli::one_line(&err)),
                    },
                    Ok(_) => "it was not deleted: the key now holds another object (or none)".to_string(),
                    Err(err) => format!("it was not deleted: {}", crate::cli::one_line(&err)),
                };
                return Err(crate::cli::integrity(format!(
                    "stored object {key:?} failed verification: OSS reports CRC-64 {stored} but the bytes read have {}; {removed}",
                    crc.finish()
                )));
            }
        }
        Ok(PutResult { size: crc.len(), crc64: crc.finish(), etag: answer.etag, parts, stored_crc64: answer.crc64 })
    }

    /// Uploads parts `first` (already read) and the rest of `reader`.
    fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        schedule: &PartSchedule,
        first: Vec<PartData>,
        reader: &mut dyn Read,
        crc: &mut Crc64,
    ) -> Result<Vec<(u32, String)>> {
        let mut tasks: JoinSet<Result<(u32, String)>> = JoinSet::new();
        let mut done: Vec<(u32, String)> = Vec::new();
        let mut queued = first.into_iter();
        let mut number: u32 = 0;
        let harvest = |done: &mut Vec<(u32, String)>,
                       joined: Option<Result<Result<(u32, String)>, tokio::task::JoinError>>|
         -> Result<()> {
            if let Some(joined) = joined {
                done.push(joined.context("a part upload task failed")??);
            }
            Ok(())
        };
        let result = (|| -> Result<()> {
            loop {
                let body = match queued.next() {
                    Some(body) => body,
                    None => self.read_part(reader, schedule, number + 1, crc)?,
                };
                if body.is_empty() {
                    break;
                }
                number += 1;
                if number > MAX_PARTS {
                    bail!("the stream needs more than {MAX_PARTS} parts; use a larger --part-size or --expected-size");
                }
                let cap = plan(schedule.part_size(number), self.tuning.parallel).in_flight;
                while let Some(joined) = tasks.try_join_next() {
                    harvest(&mut done, Some(joined))?;
                }
                while tasks.len() >= cap {
                    let joined = self.rt.block_on(tasks.join_next());
                    harvest(&mut done, joined)?;
                }
                let client = self.client.clone();
                let (bucket, key, upload_id) = (self.bucket.clone(), key.to_string(), upload_id.to_string());
                crate::debug!("part {number}: {} bytes", body.len());
                let (sent, size) = (self.tuning.progress.output(), body.len());
                tasks.spawn_on(
                    async move {
                        let answer = client.upload_part(&bucket, &key, &upload_id, number, body).await?;
                        sent.add(1, size);
                        let etag = answer.etag.with_context(|| format!("UploadPart {number} answer has no ETag"))?;
                        Ok((number, etag))
                    },
                    self.rt.handle(),
                );
            }
            while !tasks.is_empty() {
                let joined = self.rt.block_on(tasks.join_next());
                harvest(&mut done, joined)?;
            }
            Ok(())
        })();
        if let Err(err) = result {
            tasks.abort_all();
            // Let aborted tasks finish before the upload is aborted, so no
            // part lands after the abort.
            self.rt.block_on(async { while tasks.join_next().await.is_some() {} });
            return Err(err);
        }
        done.sort_by_key(|(n, _)| *n);
        Ok(done)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
