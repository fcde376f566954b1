//! Any bytes as a checkpoint file: open it (format sniffing and every header parser behind it), then
//! read every tensor through the streaming engine. Errors are fine; a panic or a read out of bounds
//! is a finding.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use modelkin_core::{inspect, Checkpoint, Options, Progress};

fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    // In memory-backed /dev/shm when there is one: each execution writes and maps the file.
    FILE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("modelkin-fuzz-open-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = file();
    std::fs::write(path, data).unwrap();
    if let Ok(ck) = Checkpoint::open(path) {
        let opts = Options {
            threads: Some(1),
            sample_size: 16,
            ..Options::default()
        };
        let _ = inspect(&ck, &opts, &Progress::default());
    }
});
