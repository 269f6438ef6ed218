//! The in-suite OSS-compatible server (filled in by the OSS issue).
