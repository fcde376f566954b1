//! The zip reader and the PyTorch archive parser on arbitrary bytes: tensors inside the bytes, or
//! an error; no panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use modelkin_core::format::{torch, zip::Archive};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.bin");
    let Ok(archive) = Archive::read(path, data) else {
        return;
    };
    if torch::is_torch(&archive) {
        if let Ok(tensors) = torch::parse(path, data, &archive) {
            for t in tensors {
                let end = t.offset.checked_add(t.nbytes).expect("validated end");
                assert!(end <= data.len() as u64, "{} ends past the file", t.name);
            }
        }
    }
});
