//! Tests of oss_stages (filled in by its issue).
