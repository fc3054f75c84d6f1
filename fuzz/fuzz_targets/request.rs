//! The request decoder and the whole core, as `validate` runs them, on arbitrary payloads.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
