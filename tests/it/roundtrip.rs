//! Tests of roundtrip (filled in by its issue).
