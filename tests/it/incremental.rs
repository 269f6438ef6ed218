//! Tests of incremental (filled in by its issue).
