//! The safetensors header parser on arbitrary bytes: it must return a header or an error, never
//! panic, and what it accepts must describe tensors inside the bytes it was given.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use modelkin_core::format::safetensors::parse_header;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = parse_header(Path::new("fuzz.safetensors"), data) {
        for t in &header.tensors {
            let end = t.offset.checked_add(t.nbytes).expect("validated end");
            assert!(end <= data.len() as u64, "{} ends past the file", t.name);
        }
    }
});
