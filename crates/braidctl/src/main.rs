//! braidctl
fn main() {}
