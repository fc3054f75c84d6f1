//! The compiled `policy.wasm` in a real waPC host: one test binary, so the host (wasmtime) is
//! linked once. The rule: what depends only on the pure core (a rule, a check, a message) is
//! tested natively, next to it in `src/`; what needs the artifact (the whole response, host calls
//! replayed from kwctl sessions, resource limits, the examples and metadata as Kubewarden reads
//! them) is tested here. `tests/properties.rs` stays a binary of its own so that mutation testing
//! (`make mutants`) can run it alone against each mutant.

mod common;

mod boundary;
mod catalogue;
mod cluster;
mod fuzz_corpus;
mod guardrails;
mod holders;
mod layouts;
mod limits;
mod metadata;
mod parity;
mod rbac;
mod selectors;
mod warnings;
