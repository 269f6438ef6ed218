//! Multipart uploads begun and neither completed nor aborted: their parts
//! are stored (and billed) but belong to no object. A killed upload leaves
//! one; `mb-oss-rm --prune` aborts those older than a day.

use serde::Serialize;

/// One upload in progress (or abandoned).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PendingUpload {
    /// The key the upload would complete into.
    pub key: String,
    /// The upload id OSS gave at initiation.
    pub upload_id: String,
    /// When it was initiated, RFC 3339 UTC, when the backend says.
    pub initiated: Option<String>,
}
