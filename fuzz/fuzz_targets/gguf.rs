//! The GGUF parser on arbitrary bytes: tensors inside the bytes and metadata within what the file
//! holds, or an error; never a panic, and never an allocation a header merely claims.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use modelkin_core::format::gguf::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = parse(Path::new("fuzz.gguf"), data) {
        for t in &header.tensors {
            let end = t.offset.checked_add(t.nbytes).expect("validated end");
            assert!(end <= data.len() as u64, "{} ends past the file", t.name);
        }
    }
});
