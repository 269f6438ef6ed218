//! mb-oss-put (not yet built).

fn main() {}
