//! mb-oplog-range (not yet built).

fn main() {}
