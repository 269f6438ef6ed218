//! SIGTERM, SIGINT and SIGHUP during a multipart upload: abort the upload
//! (its parts are billed until then), then exit with 128 + the signal number
//! (143, 130, 129), as a shell reports a process killed by it.
//!
//! Tokio's signal support (already a dependency) listens on a thread of its
//! own, installed by the first multipart upload. Once installed it stays for
//! the life of the process (tokio never restores the default action), so it
//! also ends the process, with the same status, when no upload is running.
//! `kill -9` cannot be caught: its leftovers are for lifecycle rules.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;

use super::Client;

struct Active {
    id: u64,
    client: Client,
    runtime: Handle,
    bucket: String,
    key: String,
    upload_id: String,
}

static ACTIVE: Mutex<Vec<Active>> = Mutex::new(Vec::new());
static NEXT_ID: Mutex<u64> = Mutex::new(0);
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// While alive, a signal aborts the upload it names.
pub(crate) struct Watch(u64);

impl Drop for Watch {
    fn drop(&mut self) {
        lock(&ACTIVE).retain(|a| a.id != self.0);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a multipart upload to abort on SIGTERM, SIGINT or SIGHUP.
pub(crate) fn watch(client: &Client, runtime: &Handle, bucket: &str, key: &str, upload_id: &str) -> Watch {
    let installed = *INSTALLED.get_or_init(install);
    if !installed {
        crate::warn!("cannot catch SIGTERM/SIGINT/SIGHUP: an interrupted upload will not be aborted");
    }
    let id = {
        let mut next = lock(&NEXT_ID);
        *next += 1;
        *next
    };
    lock(&ACTIVE).push(Active {
        id,
        client: client.clone(),
        runtime: runtime.clone(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id: upload_id.to_string(),
    });
    Watch(id)
}

fn install() -> bool {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = std::sync::mpsc::channel::<bool>();
    let spawned = std::thread::Builder::new().name("mb-signals".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            let _ = tx.send(false);
            return;
        };
        rt.block_on(async move {
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
            else {
                let _ = tx.send(false);
                return;
            };
            let _ = tx.send(true);
            let (number, name) = tokio::select! {
                _ = term.recv() => (15, "SIGTERM"),
                _ = int.recv() => (2, "SIGINT"),
                _ = hup.recv() => (1, "SIGHUP"),
            };
            abort_all(name).await;
            std::process::exit(128 + number);
        });
    });
    spawned.is_ok() && rx.recv().unwrap_or(false)
}

async fn abort_all(signal: &str) {
    let active: Vec<Active> = std::mem::take(&mut *lock(&ACTIVE));
    for upload in active {
        let Active { client, runtime, bucket, key, upload_id, .. } = upload;
        // On the upload's own runtime (its client's connections live there).
        let task = runtime.spawn(async move {
            let result = client.abort_multipart(&bucket, &key, &upload_id).await;
            (key, upload_id, result)
        });
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok((key, id, Ok(())))) => {
                crate::warn!("{signal}: aborted multipart upload {id} of {key:?}");
            }
            Ok(Ok((key, id, Err(err)))) => {
                crate::warn!(
                    "{signal}: could not abort multipart upload {id} of {key:?}: {}",
                    crate::cli::one_line(&err)
                );
            }
            _ => {
                crate::warn!("{signal}: could not abort a multipart upload in time");
            }
        }
    }
}
