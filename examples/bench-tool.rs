//! The helper behind `scripts/bench` and `scripts/bench-stages`: starts nothing, only talks to a mongod.
//!
//! - `init-rs --port P`: initiates a single-node replica set `rs0` on
//!   127.0.0.1:P (unless it already is one: a restarted member) and waits
//!   until it is writable.
//! - `generate --uri U --db D --size-mb N --doc-bytes B [--collections C] [--name NAME]`:
//!   about N MB (10^6 bytes of BSON) of documents of about B bytes each, spread
//!   over C collections `NAME_0..`, inserted in unordered batches of ~8 MB,
//!   collections in parallel. Documents look like application data (ids,
//!   numbers, words, a date, a nested array) so they compress like real dumps.
//! - `generate-shop --uri U --db D --size-mb N [--seed S] [--to-stdout]`: about N
//!   MB of a shop's `customers` (15% of the bytes), `orders` (50%) and `events`
//!   (35%) with varied text (see `examples/bench/shop.rs`; gzip -6 takes it to
//!   about a third), inserted as `generate` does; `--to-stdout` writes the BSON
//!   documents to stdout instead (no server), to check the ratio.
//! - `drain --uri U --db D [--parallel N]`: reads every collection of D with
//!   `Collection<RawDocumentBuf>` and `cursor.advance()`/`current()` (no
//!   decoding, as `mb-dump` reads), N collections at once; prints
//!   `{"bytes":..,"docs":..,"seconds":..,"parallel":N}`: the server's own limit
//!   for a dump on this machine.
//! - `count --uri U --db D --collection C`: prints `{"count": N}`, the documents in D.C.
//! - `hash --uri U --db D`: prints `{"md5": ...}`, the server's `dbHash` of D.
//! - `insert-one --uri U --db D --collection C`: one new ~200 B document (one oplog entry).
//! - `workload --uri U --db D --ops N [--collection C]`: about N single-document
//!   writes (oplog entries) on C: 40% updates, 40% inserts, 20% deletes, in
//!   bulk commands; prints the counts as JSON.
//! - `bulk-workload --uri U --db D --ops N [--seed S]`: N writes on a
//!   `generate-shop` database as unordered bulk writes of 1000 (40% inserts,
//!   40% `$set`/`$inc` updates, 20% deletes; see `examples/bench/replay.rs`);
//!   prints the counts and the seconds the source took (the replay row's baseline).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, DateTime, Document, RawDocumentBuf};
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use mongodb::Client;

#[path = "bench/replay.rs"]
mod replay;
#[path = "bench/shop.rs"]
mod shop;

#[derive(Parser)]
#[command(name = "bench-tool", about = "Data generation and baselines for scripts/bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Initiate a single-node replica set rs0 on 127.0.0.1:PORT.
    InitRs {
        #[arg(long)]
        port: u16,
    },
    /// Insert about SIZE_MB MB of documents of about DOC_BYTES bytes.
    Generate {
        #[arg(long)]
        uri: String,
        #[arg(long)]
        db: String,
        #[arg(long)]
        size_mb: u64,
        #[arg(long)]
        doc_bytes: usize,
        #[arg(long, default_value_t = 2)]
        collections: usize,
        #[arg(long, default_value = "coll")]
        name: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Insert about SIZE_MB MB of customers, orders and events.
    GenerateShop {
        #[arg(long, default_value = "")]
        uri: String,
        #[arg(long, default_value = "shop")]
        db: String,
        #[arg(long)]
        size_mb: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write BSON to stdout instead of inserting.
        #[arg(long)]
        to_stdout: bool,
    },
    /// Raw cursor drain of every collection of DB.
    Drain {
        #[arg(long)]
        uri: String,
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 4)]
        parallel: usize,
    },
    /// The documents in DB.COLLECTION, as {"count": N}.
    Count(CollectionArgs),
    /// The server's dbHash of DB, as {"md5": "..."}: equal on two servers holding the same data.
    Hash {
        #[arg(long)]
        uri: String,
        #[arg(long)]
        db: String,
    },
    /// One new document of about 200 bytes in DB.COLLECTION: one oplog entry.
    InsertOne(CollectionArgs),
    /// About OPS writes (updates, inserts, deletes) to make oplog.
    Workload {
        #[arg(long)]
        uri: String,
        #[arg(long)]
        db: String,
        #[arg(long)]
        ops: u64,
        #[arg(long, default_value = "small_0")]
        collection: String,
    },
    /// OPS writes on a shop database as unordered bulk writes of 1000.
    BulkWorkload {
        #[arg(long)]
        uri: String,
        #[arg(long)]
        db: String,
        #[arg(long)]
        ops: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// `--uri U --db D --collection C`: the collection a command reads or writes.
#[derive(clap::Args)]
struct CollectionArgs {
    #[arg(long)]
    uri: String,
    #[arg(long)]
    db: String,
    #[arg(long)]
    collection: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let result = run(Cli::parse().command).await;
    let clients = std::mem::take(&mut *CLIENTS.lock().unwrap_or_else(|e| e.into_inner()));
    for client in clients {
        client.shutdown().await;
    }
    result
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::InitRs { port } => init_rs(port).await,
        Command::Generate { uri, db, size_mb, doc_bytes, collections, name, seed } => {
            generate(&uri, &db, size_mb, doc_bytes, collections, &name, seed).await
        }
        Command::GenerateShop { uri, db, size_mb, seed, to_stdout } => {
            generate_shop(&uri, &db, size_mb, seed, to_stdout).await
        }
        Command::Drain { uri, db, parallel } => drain(&uri, &db, parallel).await,
        Command::Count(args) => {
            let count = collection(&args).await?.count_documents(doc! {}).await?;
            println!("{}", serde_json::json!({ "count": count }));
            Ok(())
        }
        Command::Hash { uri, db } => {
            let reply = client(&uri).await?.database(&db).run_command(doc! {"dbHash": 1}).await?;
            println!("{}", serde_json::json!({ "md5": reply.get_str("md5")? }));
            Ok(())
        }
        Command::InsertOne(args) => {
            let coll = collection(&args).await?;
            let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
            let mut one = document(&mut Rng(seed | 1), 0, 200);
            one.remove("_id"); // the server's ObjectId: never a duplicate
            coll.insert_one(one).await?;
            Ok(())
        }
        Command::Workload { uri, db, ops, collection } => workload(&uri, &db, ops, &collection).await,
        Command::BulkWorkload { uri, db, ops, seed } => {
            replay::bulk_workload(&client(&uri).await?, &db, ops, seed).await
        }
    }
}

/// Every client made, shut down before the runtime ends: a client dropped
/// last ends its sessions on a task the runtime's shutdown cuts, and the
/// driver panics there (the same reason `mb`'s stages shut theirs down).
static CLIENTS: std::sync::Mutex<Vec<Client>> = std::sync::Mutex::new(Vec::new());

async fn client(uri: &str) -> Result<Client> {
    let mut options = ClientOptions::parse(uri).await.with_context(|| format!("parsing {uri}"))?;
    options.server_selection_timeout = Some(Duration::from_secs(30));
    let client = Client::with_options(options)?;
    CLIENTS.lock().unwrap_or_else(|e| e.into_inner()).push(client.clone());
    Ok(client)
}

async fn collection(args: &CollectionArgs) -> Result<mongodb::Collection<Document>> {
    Ok(client(&args.uri).await?.database(&args.db).collection(&args.collection))
}

async fn init_rs(port: u16) -> Result<()> {
    let client = client(&format!("mongodb://127.0.0.1:{port}/?directConnection=true")).await?;
    let admin = client.database("admin");
    let config = doc! {"_id": "rs0", "members": [{"_id": 0, "host": format!("127.0.0.1:{port}")}]};
    match admin.run_command(doc! {"replSetInitiate": config}).await {
        // AlreadyInitialized: a member restarted, electing itself again.
        Err(e) if matches!(*e.kind, ErrorKind::Command(ref c) if c.code == 23) => {}
        other => {
            other.context("replSetInitiate")?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hello = admin.run_command(doc! {"hello": 1}).await?;
        if hello.get_bool("isWritablePrimary").unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the replica set on port {port} never became writable");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// xorshift64*: deterministic, fast, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "order", "customer", "shipped", "pending", "paid", "refund", "cart", "sku", "warehouse", "beijing", "hangzhou",
    "shanghai", "shenzhen", "express", "discount", "coupon", "invoice", "returned", "gift", "member", "review",
    "great", "fast", "delivery", "quality", "price", "blue", "red", "large", "small", "cotton", "steel",
];

fn text(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        if rng.below(8) == 0 {
            s.push_str(&format!("{:x} ", rng.next()));
        } else {
            s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
            s.push(' ');
        }
    }
    s.truncate(bytes);
    s
}

/// One document of about `bytes` BSON bytes (fixed fields take ~170).
fn document(rng: &mut Rng, id: i64, bytes: usize) -> Document {
    let items: Vec<Bson> = (0..2)
        .map(|_| {
            Bson::Document(doc! {"sku": format!("SKU-{:06}", rng.below(1_000_000)), "qty": (rng.below(9) + 1) as i32})
        })
        .collect();
    doc! {
        "_id": id,
        "user": rng.below(10_000_000) as i64,
        "status": WORDS[rng.below(6) as usize],
        "city": WORDS[9 + rng.below(4) as usize],
        "total": rng.below(1_000_000) as f64 / 100.0,
        "created": DateTime::from_millis(1_700_000_000_000 + rng.below(30_000_000_000) as i64),
        "items": items,
        "note": text(rng, bytes.saturating_sub(170).max(8)),
    }
}

async fn generate(
    uri: &str,
    db: &str,
    size_mb: u64,
    doc_bytes: usize,
    collections: usize,
    name: &str,
    seed: u64,
) -> Result<()> {
    let client = client(uri).await?;
    let database = client.database(db);
    let start = Instant::now();
    let per_collection = size_mb * 1_000_000 / collections as u64;
    let tasks = (0..collections).map(|c| {
        let coll = database.collection::<Document>(&format!("{name}_{c}"));
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((c as u64 + 1) * 0x1234_5678_9abc));
        insert_until(coll, per_collection, move |id| document(&mut rng, id, doc_bytes))
    });
    let results: Vec<(u64, u64)> = stream::iter(tasks).buffer_unordered(2).try_collect().await?;
    report(&results, collections, start);
    Ok(())
}

/// Inserts documents `make(0)`, `make(1)`, ... into `coll` in unordered
/// batches of about 8 MB until `target` bytes of BSON; returns (bytes, documents).
async fn insert_until(
    coll: mongodb::Collection<Document>,
    target: u64,
    mut make: impl FnMut(i64) -> Document,
) -> Result<(u64, u64)> {
    let (mut bytes, mut docs, mut id) = (0u64, 0u64, 0i64);
    while bytes < target {
        let (mut batch, mut batch_bytes) = (Vec::new(), 0u64);
        while batch_bytes < 8_000_000 && bytes + batch_bytes < target {
            let d = make(id);
            id += 1;
            batch_bytes += RawDocumentBuf::from_document(&d)?.as_bytes().len() as u64;
            batch.push(d);
        }
        bytes += batch_bytes;
        docs += batch.len() as u64;
        coll.insert_many(batch).ordered(false).await?;
    }
    Ok((bytes, docs))
}

/// Prints what a generator wrote, as one JSON line.
fn report(results: &[(u64, u64)], collections: usize, start: Instant) {
    let (bytes, docs) = results.iter().fold((0, 0), |a, r| (a.0 + r.0, a.1 + r.1));
    println!(
        "{}",
        serde_json::json!({"bytes": bytes, "docs": docs, "collections": collections,
            "seconds": start.elapsed().as_secs_f64()})
    );
}

/// Makes the document with the given `_id`.
type Maker = fn(&mut shop::Shop, i64) -> Document;

/// The shop's collections: name, share of the bytes in percent, maker.
const SHOP: [(&str, u64, Maker); 3] =
    [("customers", 15, shop::Shop::customer), ("orders", 50, shop::Shop::order), ("events", 35, shop::Shop::event)];

async fn generate_shop(uri: &str, db: &str, size_mb: u64, seed: u64, to_stdout: bool) -> Result<()> {
    use std::io::Write;
    let start = Instant::now();
    if to_stdout {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for (c, (_, share, make)) in SHOP.iter().enumerate() {
            let mut gen = shop::Shop::new(seed * 10 + c as u64);
            let (mut bytes, mut id) = (0u64, 0i64);
            while bytes < size_mb * 10_000 * share {
                let raw = RawDocumentBuf::from_document(&make(&mut gen, id))?;
                out.write_all(raw.as_bytes())?;
                bytes += raw.as_bytes().len() as u64;
                id += 1;
            }
        }
        return Ok(out.flush()?);
    }
    let client = client(uri).await?;
    let database = client.database(db);
    let tasks = SHOP.iter().enumerate().map(|(c, &(name, share, make))| {
        let mut gen = shop::Shop::new(seed * 10 + c as u64);
        insert_until(database.collection::<Document>(name), size_mb * 10_000 * share, move |id| make(&mut gen, id))
    });
    let results: Vec<(u64, u64)> = stream::iter(tasks).buffer_unordered(3).try_collect().await?;
    report(&results, SHOP.len(), start);
    Ok(())
}

async fn drain(uri: &str, db: &str, parallel: usize) -> Result<()> {
    let client = client(uri).await?;
    let database = client.database(db);
    let names = database.list_collection_names().filter(doc! {"type": "collection"}).await?;
    let start = Instant::now();
    let tasks = names.into_iter().filter(|n| !n.starts_with("system.")).map(|name| {
        let coll = database.collection::<RawDocumentBuf>(&name);
        async move {
            let mut cursor = coll.find(doc! {}).await?;
            let (mut bytes, mut docs) = (0u64, 0u64);
            while cursor.advance().await? {
                bytes += cursor.current().as_bytes().len() as u64;
                docs += 1;
            }
            Ok::<_, anyhow::Error>((bytes, docs))
        }
    });
    let results: Vec<(u64, u64)> = stream::iter(tasks).buffer_unordered(parallel.max(1)).try_collect().await?;
    let seconds = start.elapsed().as_secs_f64();
    let (bytes, docs) = results.iter().fold((0, 0), |a, r| (a.0 + r.0, a.1 + r.1));
    println!(
        "{}",
        serde_json::json!({"bytes": bytes, "docs": docs, "seconds": seconds, "parallel": parallel,
            "mb_per_s": bytes as f64 / 1e6 / seconds, "docs_per_s": docs as f64 / seconds})
    );
    Ok(())
}

async fn workload(uri: &str, db: &str, ops: u64, collection: &str) -> Result<()> {
    let client = client(uri).await?;
    let coll = client.database(db).collection::<Document>(collection);
    let start = Instant::now();
    let max_id = coll
        .find_one(doc! {})
        .sort(doc! {"_id": -1})
        .await?
        .and_then(|d| d.get_i64("_id").ok())
        .context("the workload collection is empty")?;
    let mut rng = Rng(42);
    let (mut updated, mut inserted, mut deleted) = (0u64, 0u64, 0u64);
    let step = 1_000u64;
    let mut next_id = max_id + 1;
    let mut low = 0i64;
    while updated + inserted + deleted < ops {
        // Updates: one oplog entry per document changed.
        let n = (step * 4 / 10) as i64;
        let r = coll
            .update_many(
                doc! {"_id": {"$gte": low, "$lt": low + n}},
                doc! {"$set": {"status": "refund", "bench": rng.below(1000) as i64}, "$inc": {"user": 1i64}},
            )
            .await?;
        updated += r.modified_count;
        // Inserts.
        let batch: Vec<Document> = (0..step * 4 / 10)
            .map(|_| {
                next_id += 1;
                document(&mut rng, next_id, 200)
            })
            .collect();
        inserted += coll.insert_many(batch).ordered(false).await?.inserted_ids.len() as u64;
        // Deletes.
        let d = (step * 2 / 10) as i64;
        deleted += coll.delete_many(doc! {"_id": {"$gte": low + n, "$lt": low + n + d}}).await?.deleted_count;
        low += n + d;
        if low > max_id {
            low = 0;
        }
    }
    println!(
        "{}",
        serde_json::json!({"ops": updated + inserted + deleted, "updates": updated, "inserts": inserted,
            "deletes": deleted, "seconds": start.elapsed().as_secs_f64()})
    );
    Ok(())
}
