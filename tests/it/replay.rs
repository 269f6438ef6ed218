//! Restore correctness of `mb-apply` into a server: the backup's scope
//! (cross-database transactions), `--drop` onto a target that holds other
//! data, conflicts with existing documents, every DDL the oplog carries, and
//! namespace patterns from the user.

use crate::support::{assert_fails_with, fixture, stage};

#[test]
fn bad_namespace_patterns_are_usage_errors() {
    for (from, to, needle) in [
        ("fixture.$c$", "nodot", "is not a namespace"),
        ("fixture.$c$", "copy.", "is not a namespace"),
        ("fixture.$c", "copy.$c$", "bad variable"),
    ] {
        let output = stage("mb-apply")
            .args(["--dry-run", "--ns-from", from, "--ns-to", to])
            .arg(fixture("mb-apply", "good.tar"))
            .output()
            .unwrap();
        assert_fails_with(&output, 2, needle);
    }
}
