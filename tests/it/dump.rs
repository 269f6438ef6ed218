//! Tests of dump (filled in by its issue).
