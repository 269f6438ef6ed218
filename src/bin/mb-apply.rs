//! mb-apply (not yet built).

fn main() {}
