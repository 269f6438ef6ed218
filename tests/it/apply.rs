//! `mb-apply` alone: fixture streams (good and damaged) and restores into a
//! real mongod with filters and renames.

use mongodb::bson::{doc, Document};

use crate::support::mongod::{block_on, Mongod};
use crate::support::{assert_fails_with, assert_ok, fixture, run_with_input, stage, stderr_of};

fn apply_fixture(name: &str, args: &[&str]) -> std::process::Output {
    stage("mb-apply").args(args).arg(fixture("mb-apply", name)).output().unwrap()
}

#[test]
fn dry_run_checks_a_good_stream() {
    let output = apply_fixture("good.tar", &["--dry-run"]);
    assert_ok(&output);
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["dry_run"], true);
    assert_eq!(record["documents"], 250);
    assert_eq!(record["collections"], 3);
}

#[test]
fn damaged_streams_fail_naming_the_problem() {
    for (name, needle) in [
        ("truncated.tar", "fixture/people.bson.000001: stream cut short"),
        ("corrupt-crc.tar", "fixture/people.bson.000001: CRC-64 mismatch"),
        ("bad-bson.tar", "fixture/notes.bson.000001: bad BSON at byte 0"),
        // Nested 50,000 deep: refused, where the reader's stack once overflowed (abort).
        ("deep-bson.tar", "document 50: bad BSON at byte 1200 of the document: nested deeper than mongod allows"),
        ("no-manifest.tar", "cut short"),
        ("missing-chunk.tar", "fixture.notes does not match the manifest"),
        ("not-a-tar.bin", "corrupt tar stream"),
    ] {
        let output = apply_fixture(name, &["--dry-run", "-q"]);
        assert_fails_with(&output, 3, needle);
        assert_eq!(stderr_of(&output).lines().count(), 1, "{name}: one line on stderr: {}", stderr_of(&output));
    }
}

#[test]
fn empty_input_is_an_error() {
    let output = crate::support::run_with_input(stage("mb-apply").arg("--dry-run"), b"");
    assert_fails_with(&output, 3, "no mb stream");
}

#[test]
fn a_corrupt_chunk_writes_none_of_its_documents() {
    let server = Mongod::shared_standalone();
    let output = stage("mb-apply")
        .args(["--uri", &server.uri(), "--drop", "--ns-from", "fixture.$c$", "--ns-to", "apply_corrupt.$c$"])
        .arg(fixture("mb-apply", "corrupt-crc.tar"))
        .output()
        .unwrap();
    assert_fails_with(&output, 3, "CRC-64 mismatch");
    let client = server.client();
    let count = block_on(async {
        client.database("apply_corrupt").collection::<Document>("people").count_documents(doc! {}).await
    })
    .unwrap();
    assert_eq!(count, 0, "no document of a chunk that failed its check may be written");
}

#[test]
fn restores_with_filters_and_renames() {
    let server = Mongod::shared_standalone();
    let output = stage("mb-apply")
        .args(["--uri", &server.uri(), "--drop", "-q", "--ns-exclude", "fixture.notes"])
        .args(["--ns-from", "fixture.$c$", "--ns-to", "apply_renamed.$c$"])
        .arg(fixture("mb-apply", "good.tar"))
        .output()
        .unwrap();
    assert_ok(&output);
    let client = server.client();
    let db = client.database("apply_renamed");
    block_on(async {
        let mut names = db.list_collection_names().await.unwrap();
        names.sort();
        assert_eq!(names, ["adults", "people", "system.views"]);
        let people = db.collection::<Document>("people");
        assert_eq!(people.count_documents(doc! {}).await.unwrap(), 200);
        assert_eq!(db.collection::<Document>("adults").count_documents(doc! {}).await.unwrap(), 200 - 10 * 4);
        let indexes = people.list_index_names().await.unwrap();
        assert!(indexes.contains(&"name_1".to_string()), "{indexes:?}");
    });
}

#[test]
fn restoring_into_existing_data_keeps_it_and_counts_duplicates() {
    let server = Mongod::shared_standalone();
    let args = ["--uri", &server.uri(), "--ns-from", "fixture.$c$", "--ns-to", "apply_dups.$c$"];
    let client = server.client();
    block_on(async { client.database("apply_dups").drop().await }).unwrap();
    assert_ok(&stage("mb-apply").args(args).arg(fixture("mb-apply", "good.tar")).output().unwrap());
    let again = stage("mb-apply").args(args).arg(fixture("mb-apply", "good.tar")).output().unwrap();
    assert_ok(&again);
    let record: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(record["duplicates"], 250);
    assert_eq!(record["documents"], 0);
}

#[test]
fn unreachable_server_is_a_clear_error() {
    let output = stage("mb-apply")
        .args(["--uri", "mongodb://127.0.0.1:1/?directConnection=true", "--server-timeout", "2"])
        .arg(fixture("mb-apply", "good.tar"))
        .output()
        .unwrap();
    assert_fails_with(&output, 1, "connecting to 127.0.0.1:1");
}

/// One chunk larger than an insert command may be (over 100,000 documents
/// and over 16 MiB): it restores whole, and a rerun counts every document as
/// identical and a changed one as a conflict, whichever command it was in.
/// (The rerun once failed with "I/O error: unexpected end of file": the
/// server could not send the refusals of 100,000 documents in one reply.)
#[test]
fn a_chunk_larger_than_one_insert_command_restores_whole() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "apply_big_chunk";
    let run = |client: &mongodb::Client, command: Document| {
        block_on(async { client.database(db).run_command(command).await }).unwrap()
    };
    run(&source.client(), doc! {"dropDatabase": 1});
    run(&target.client(), doc! {"dropDatabase": 1});
    for start in (0..120_000).step_by(20_000) {
        let small: Vec<Document> = (start..start + 20_000).map(|i| doc! {"_id": i, "n": i % 7}).collect();
        run(&source.client(), doc! {"insert": "c", "documents": small});
    }
    let text = "x".repeat(6 << 20);
    for i in 0..3 {
        run(&source.client(), doc! {"insert": "c", "documents": [{"_id": 200_000 + i, "text": &text}]});
    }
    let dump =
        stage("mb-dump").args(["-q", "--uri", &source.uri(), "--db", db, "--chunk-size", "64MiB"]).output().unwrap();
    assert_ok(&dump);

    let apply =
        |extra: &[&str]| run_with_input(stage("mb-apply").args(["--uri", &target.uri()]).args(extra), &dump.stdout);
    let output = apply(&["--drop"]);
    assert_ok(&output);
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["documents"], 120_003, "{record}");
    assert_eq!(source.db_hash(db).0, target.db_hash(db).0);

    // The last small document sits in a later command than the first.
    run(&target.client(), doc! {"update": "c", "updates": [{"q": {"_id": 119_999}, "u": {"$set": {"n": -1}}}]});
    let output = apply(&["--keep-existing"]);
    assert_ok(&output);
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (&record["documents"], &record["duplicates"], &record["id_conflicts"]),
        (&0.into(), &120_002.into(), &1.into()),
        "{record}"
    );
}
