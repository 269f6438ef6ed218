//! mb-pack (not yet built).

fn main() {}
