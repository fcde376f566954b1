//! The `.npy` header parser on arbitrary bytes: a tensor inside the bytes, or an error; no panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use modelkin_core::format::npy::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = parse(Path::new("fuzz.npy"), "fuzz", data) {
        let end = t.offset.checked_add(t.nbytes).expect("validated end");
        assert!(end <= data.len() as u64);
    }
});
