//! Tests of scripts (filled in by its issue).
