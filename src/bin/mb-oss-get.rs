//! mb-oss-get (not yet built).

fn main() {}
