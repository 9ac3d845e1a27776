//! Criterion benches of the pipeline's stages (placeholder until written).
fn main() {}
