//! Top-level `Timestamp(0,0)` values in restored documents. The server
//! replaces an empty timestamp with the current time on insert, unless the
//! insert says `bypassEmptyTsReplacement` (MongoDB 8.0, 7.0.13+, 6.0.17+,
//! 5.0.29+). Where the server lacks the option, the documents are inserted
//! and their zero timestamps then `$set` back, which an update keeps (as
//! mongo-tools 100.13 does). The oplog needs neither: its application keeps them.

use anyhow::{Context, Result};
use mongodb::bson::spec::ElementType;
use mongodb::bson::{doc, Bson, Document, RawBsonRef, RawDocument, Timestamp};
use mongodb::{Client, Database};

/// How the target keeps empty timestamps of inserted documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmptyTimestamps {
    /// The insert says `bypassEmptyTsReplacement`.
    Bypass,
    /// Inserted, then `$set` back.
    SetBack,
    /// The documents hold none: nothing to keep.
    None,
}

/// Asks the server whether it takes `bypassEmptyTsReplacement`, with an
/// update that matches nothing (mongo-tools' probe). Any refusal: set back.
pub(crate) async fn probe(client: &Client, db: &str) -> EmptyTimestamps {
    let probe = doc! {
        "update": "mb_empty_ts_probe",
        "updates": [{"q": {"_mb_never": 1}, "u": {"$rename": {}}}],
        "bypassEmptyTsReplacement": true,
    };
    match client.database(db).run_command(probe).await {
        Ok(_) => EmptyTimestamps::Bypass,
        Err(err) => {
            crate::debug!("the target does not take bypassEmptyTsReplacement ({err}): zero timestamps are set back");
            EmptyTimestamps::SetBack
        }
    }
}

/// The top-level fields of `document` (but `_id`) holding `Timestamp(0,0)`.
fn zero_fields(document: &RawDocument) -> Result<Vec<&str>> {
    let mut fields = Vec::new();
    // Element by element, decoding only timestamps: strings need not be UTF-8.
    for element in document.iter_elements() {
        let element = element?;
        if element.element_type() != ElementType::Timestamp || element.key() == "_id" {
            continue;
        }
        if matches!(element.value()?, RawBsonRef::Timestamp(Timestamp { time: 0, increment: 0 })) {
            fields.push(element.key());
        }
    }
    Ok(fields)
}

/// Most update statements in one command.
const UPDATES: usize = 1000;

/// Sets the zero timestamps of the inserted `documents` back (the ones at
/// `refused` were not inserted: the target's stay as they are).
pub(crate) async fn set_back(db: &Database, collection: &str, documents: &[&[u8]], refused: &[usize]) -> Result<()> {
    let refused: std::collections::HashSet<usize> = refused.iter().copied().collect();
    let mut updates = Vec::new();
    for (index, bytes) in documents.iter().enumerate() {
        let document = RawDocument::from_bytes(bytes)?;
        let fields = zero_fields(document)?;
        if fields.is_empty() || refused.contains(&index) {
            continue;
        }
        let Some(id) = document.get("_id")? else { continue };
        let zero = Bson::Timestamp(Timestamp { time: 0, increment: 0 });
        let set: Document = fields.into_iter().map(|f| (f.to_string(), zero.clone())).collect();
        updates.push(doc! {"q": {"_id": Bson::try_from(id.to_raw_bson())?}, "u": {"$set": set}});
        if updates.len() == UPDATES {
            send(db, collection, std::mem::take(&mut updates)).await?;
        }
    }
    if !updates.is_empty() {
        send(db, collection, updates).await?;
    }
    Ok(())
}

async fn send(db: &Database, collection: &str, updates: Vec<Document>) -> Result<()> {
    let command = doc! {"update": collection, "updates": updates, "ordered": false, "bypassDocumentValidation": true};
    let reply =
        db.run_command(command).await.with_context(|| format!("setting zero timestamps back in {collection}"))?;
    if let Ok(errors) = reply.get_array("writeErrors") {
        anyhow::bail!("setting zero timestamps back in {collection}: {} refused: {:?}", errors.len(), errors.first());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_top_level_zero_timestamps_but_the_id_count() {
        let zero = Timestamp { time: 0, increment: 0 };
        let document =
            doc! {"_id": zero, "a": zero, "b": Timestamp { time: 1, increment: 0 }, "c": {"d": zero}, "e": zero};
        let raw = mongodb::bson::RawDocumentBuf::from_document(&document).unwrap();
        assert_eq!(zero_fields(&raw).unwrap(), ["a", "e"]);
    }
}
