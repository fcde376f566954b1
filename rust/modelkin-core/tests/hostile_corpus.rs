//! Replays the fuzzing corpus (`tests/corpus/<target>/`: minimised inputs kept from the cargo-fuzz
//! runs under `fuzz/`, plus hand-made hostile files) through the same entry points as the fuzz
//! targets, so every input that once reached a new code path stays a regression test without
//! nightly Rust. Each input must give a result or an error, never a panic.

use std::path::{Path, PathBuf};

use modelkin_core::checkpoint::INDEX_NAME;
use modelkin_core::format::zip::Archive;
use modelkin_core::format::{gguf, npy, pickle, safetensors, torch};
use modelkin_core::{inspect, Checkpoint, Options, Progress};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("modelkin-corpus-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn safetensors_headers_parse_or_fail_cleanly() {
    for f in corpus("safetensors_header") {
        let data = std::fs::read(&f).unwrap();
        if let Ok(h) = safetensors::parse_header(&f, &data) {
            for t in &h.tensors {
                assert!(t.offset + t.nbytes <= data.len() as u64, "{}", f.display());
            }
        }
    }
}

#[test]
fn npy_headers_parse_or_fail_cleanly() {
    for f in corpus("npy_header") {
        let data = std::fs::read(&f).unwrap();
        if let Ok(t) = npy::parse(&f, "t", &data) {
            assert!(t.offset + t.nbytes <= data.len() as u64, "{}", f.display());
        }
    }
}

#[test]
fn index_files_open_only_shards_inside_their_folder() {
    let dir = scratch("index");
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut shard = (header.len() as u64).to_le_bytes().to_vec();
    shard.extend_from_slice(header);
    shard.extend_from_slice(&[0u8; 8]);
    std::fs::write(dir.join("shard-1.safetensors"), shard).unwrap();
    for f in corpus("index") {
        std::fs::copy(&f, dir.join(INDEX_NAME)).unwrap();
        if let Ok(ck) = Checkpoint::open(&dir) {
            assert!(
                ck.files.iter().all(|x| x.path.starts_with(&dir)),
                "{}",
                f.display()
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn any_file_opens_and_reads_or_fails_cleanly() {
    let dir = scratch("open");
    let opts = Options {
        threads: Some(1),
        sample_size: 16,
        ..Options::default()
    };
    for f in corpus("open_and_read") {
        // The corpus file's own name (suffix included) picks the reader, as a user's file would.
        let path = dir.join(f.file_name().unwrap());
        std::fs::copy(&f, &path).unwrap();
        if let Ok(ck) = Checkpoint::open(&path) {
            let _ = inspect(&ck, &opts, &Progress::default());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pickles_load_or_fail_cleanly() {
    for f in corpus("pickle") {
        let _ = pickle::load(&std::fs::read(&f).unwrap());
    }
}

#[test]
fn torch_archives_parse_or_fail_cleanly() {
    for f in corpus("torch_zip") {
        let data = std::fs::read(&f).unwrap();
        let Ok(archive) = Archive::read(&f, &data) else {
            continue;
        };
        if torch::is_torch(&archive) {
            if let Ok(tensors) = torch::parse(&f, &data, &archive) {
                for t in tensors {
                    assert!(t.offset + t.nbytes <= data.len() as u64, "{}", f.display());
                }
            }
        }
    }
}

#[test]
fn gguf_files_parse_or_fail_cleanly() {
    for f in corpus("gguf") {
        let data = std::fs::read(&f).unwrap();
        if let Ok(h) = gguf::parse(&f, &data) {
            for t in &h.tensors {
                assert!(t.offset + t.nbytes <= data.len() as u64, "{}", f.display());
            }
        }
    }
}
