//! The edge: the only code that calls the host. Everything else is pure and runs natively in
//! unit tests exactly as it runs in wasm.

pub mod cluster;
pub mod log;
