//! `mb-config window RECORD`: the restorable window of an apply record
//! (`mb-apply --dry-run` over a whole cycle), for `scripts/mb-verify` and the
//! metrics: from the full backup's consistency point (`restorable_from`) to
//! the chain's end (`consistent_at`).

use anyhow::{Context, Result};

use crate::format::records::Ts;

/// Four lines: the start as RFC 3339 UTC and as `t,i`, then the end the same way.
pub(crate) fn window_lines(record: &serde_json::Value) -> Result<Vec<String>> {
    let point = |field: &str| -> Result<Ts> {
        let value = record.get(field).with_context(|| format!("the apply record has no {field}"))?;
        serde_json::from_value(value.clone()).with_context(|| format!("the apply record's {field} is not {{t, i}}"))
    };
    let (from, to) = (point("restorable_from")?, point("consistent_at")?);
    Ok([from, to]
        .into_iter()
        .flat_map(|ts| [crate::format::time::format_rfc3339(i64::from(ts.t)), ts.to_string()])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_prints_times_and_points() {
        let record = serde_json::json!({"restorable_from": {"t": 1795489200, "i": 3}, "consistent_at": {"t": 1795492800, "i": 7}});
        assert_eq!(
            window_lines(&record).unwrap(),
            ["2026-11-24T03:00:00Z", "1795489200,3", "2026-11-24T04:00:00Z", "1795492800,7"]
        );
        assert!(window_lines(&serde_json::json!({"consistent_at": {"t": 1, "i": 1}})).is_err());
    }
}
