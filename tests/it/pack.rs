//! Tests of pack (filled in by its issue).
