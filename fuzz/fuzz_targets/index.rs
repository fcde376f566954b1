//! The sharded-checkpoint index parser on arbitrary text: a validated shard → tensors map, or an
//! error; no panic, and every accepted shard name is a plain relative path that cannot leave the
//! index's folder.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use modelkin_core::checkpoint::index_shards;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the reader refuses non-UTF-8 index files before parsing
    };
    if let Ok(shards) = index_shards(Path::new("model.safetensors.index.json"), text) {
        for shard in shards.keys() {
            assert!(Path::new(shard)
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir)));
        }
    }
});
