//! `bench-tool bulk-workload`: the source side of the oplog replay row of
//! `scripts/bench`. Runs about OPS single-document writes on a shop database
//! (`generate-shop`'s `customers`, `orders`, `events`) the way an application
//! loads a server: unordered bulk writes of 1000 operations, one collection
//! per bulk, sent as MongoDB 6.0 drivers send a mixed unordered bulk (one
//! `insert`, one `update`, one `delete` command, `ordered: false`), bulks one
//! after another on one connection. The mix: 40% inserts of new shop
//! documents, 40% updates by `_id` with `$set` and `$inc`, 20% deletes by
//! `_id` of the oldest documents. Every operation writes exactly one oplog
//! entry, so the slice holds the same operations. Prints the counts and the
//! seconds the source took to absorb them: the time spent in the write
//! commands only (making the documents is not the server's work).

use std::collections::VecDeque;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use mongodb::bson::{doc, Document};
use mongodb::Client;

use crate::shop::{Rng, Shop};
use crate::SHOP;

/// Operations in one bulk write.
const BULK: u64 = 1000;

/// One collection's live `_id`s, oldest first.
struct Live {
    name: &'static str,
    make: crate::Maker,
    gen: Shop,
    ids: VecDeque<i64>,
    next: i64,
}

pub async fn bulk_workload(client: &Client, db: &str, ops: u64, seed: u64) -> Result<()> {
    let database = client.database(db);
    let mut collections = Vec::new();
    for (c, &(name, _, make)) in SHOP.iter().enumerate() {
        let coll = database.collection::<Document>(name);
        let newest = coll.find_one(doc! {}).sort(doc! {"_id": -1}).await?;
        let max = newest.and_then(|d| d.get_i64("_id").ok()).with_context(|| format!("{db}.{name} is empty"))?;
        let count = coll.count_documents(doc! {}).await? as i64;
        ensure!(count == max + 1, "{db}.{name}: expected _ids 0..={max} (as generate-shop makes them)");
        let gen = Shop::new(seed * 100 + c as u64);
        collections.push(Live { name, make, gen, ids: (0..=max).collect(), next: max + 1 });
    }
    let mut rng = Rng(seed | 1);
    let (mut inserts, mut updates, mut deletes) = (0u64, 0u64, 0u64);
    // Only the commands are timed: making the documents is the application's work, not the server's.
    let mut absorbing = std::time::Duration::ZERO;
    let mut bulk = 0usize;
    while inserts + updates + deletes < ops {
        let size = BULK.min(ops - inserts - updates - deletes);
        let live = &mut collections[bulk % SHOP.len()];
        bulk += 1;
        let (n_insert, n_update) = (size * 4 / 10, size * 4 / 10);
        let n_delete = size - n_insert - n_update;
        let documents: Vec<Document> = (0..n_insert)
            .map(|_| {
                let id = live.next;
                live.next += 1;
                live.ids.push_back(id);
                (live.make)(&mut live.gen, id)
            })
            .collect();
        let statements: Vec<Document> = (0..n_update)
            .map(|_| {
                let id = live.ids[rng.below(live.ids.len() as u64) as usize];
                doc! {"q": {"_id": id}, "u": update(live.name, &mut rng)}
            })
            .collect();
        let removals: Vec<Document> =
            (0..n_delete).map(|_| doc! {"q": {"_id": live.ids.pop_front().unwrap_or(-1)}, "limit": 1}).collect();
        ensure!(live.ids.len() as u64 > BULK, "{}: too few documents left to update and delete", live.name);
        let commands = [
            doc! {"insert": live.name, "documents": documents, "ordered": false},
            doc! {"update": live.name, "updates": statements, "ordered": false},
            doc! {"delete": live.name, "deletes": removals, "ordered": false},
        ];
        let start = Instant::now();
        let mut replies = Vec::with_capacity(3);
        for command in commands {
            replies.push(database.run_command(command).await?);
        }
        absorbing += start.elapsed();
        inserts += count(&replies[0], "n", n_insert, live.name)?;
        updates += count(&replies[1], "nModified", n_update, live.name)?;
        deletes += count(&replies[2], "n", n_delete, live.name)?;
    }
    println!(
        "{}",
        serde_json::json!({"ops": inserts + updates + deletes, "inserts": inserts, "updates": updates,
            "deletes": deletes, "bulk": BULK, "seconds": absorbing.as_secs_f64()})
    );
    Ok(())
}

/// A `$set`/`$inc` update, as the application would make on that collection.
fn update(collection: &str, rng: &mut Rng) -> Document {
    const STATUS: [&str; 4] = ["paid", "shipped", "delivered", "refunded"];
    let status = STATUS[rng.below(4) as usize];
    match collection {
        "customers" => doc! {"$set": {"tier": status, "seen": rng.next() as i64}, "$inc": {"visits": 1}},
        "orders" => doc! {"$set": {"status": status, "shipping.tracking": format!("T{:012x}", rng.next() >> 16)},
        "$inc": {"revision": 1}},
        _ => doc! {"$set": {"type": status}, "$inc": {"ms": 1 + rng.below(100) as i32}},
    }
}

/// The count a write command reports; every operation must have written.
fn count(reply: &Document, field: &str, expected: u64, collection: &str) -> Result<u64> {
    let n = reply.get_i32(field).map(i64::from).or_else(|_| reply.get_i64(field)).unwrap_or(0) as u64;
    ensure!(
        n == expected && !reply.contains_key("writeErrors"),
        "{collection}: {n} of {expected} writes ({field}): {reply}"
    );
    Ok(n)
}
