//! Tests of oss_conformance (filled in by its issue).
