//! mb-dump (not yet built).

fn main() {}
