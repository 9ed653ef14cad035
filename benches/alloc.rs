//! Allocator benchmarks (placeholder until the allocator lands).
fn main() {}
