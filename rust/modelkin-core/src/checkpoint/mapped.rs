//! One memory-mapped file of a checkpoint: mapping, change detection, paging hints, and the
//! reading of its header by its format ([`format::read_part`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, Result};
use crate::format::{self, gguf, Part, TensorInfo};

/// One memory-mapped file of a checkpoint.
#[derive(Debug)]
pub struct MappedFile {
    /// Path as opened.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// The header's `__metadata__` map (safetensors), or the scalar GGUF metadata as text.
    pub metadata: BTreeMap<String, String>,
    /// The GGUF key/value metadata with its types (empty for other formats). Arrays of strings
    /// and of arrays are validated but not kept ([`gguf::Array::Skipped`]); see
    /// [`super::Checkpoint::gguf_metadata`].
    pub kv: Vec<(String, gguf::Value)>,
    /// Number of tensors in the file's header.
    pub n_tensors: usize,
    map: Option<Mmap>,
    /// The open file and its modification time when it was mapped, to notice changes.
    file: File,
    modified: Option<std::time::SystemTime>,
}

impl MappedFile {
    /// Fails when the file was truncated or written since it was mapped: reading a mapping past
    /// a truncated end kills the process (SIGBUS), and a file rewritten in place would give
    /// numbers that describe neither version. Cheap (one `fstat`); the streaming engine calls it
    /// before each chunk and after the run, which leaves only a change in the middle of a chunk
    /// undetected.
    pub fn check_unchanged(&self) -> Result<()> {
        let meta = self.file.metadata().map_err(|e| Error::io(&self.path, e))?;
        let reason = if meta.len() < self.size {
            format!(
                "the file shrank from {} to {} bytes while it was being read",
                self.size,
                meta.len()
            )
        } else if meta.len() != self.size || meta.modified().ok() != self.modified {
            "the file was modified while it was being read; results would describe neither version"
                .to_string()
        } else {
            return Ok(());
        };
        Err(Error::Changed {
            path: self.path.clone(),
            reason,
        })
    }

    /// The whole file's bytes (empty for an empty file, which cannot be mapped).
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Asks the kernel to map `[offset, offset + len)` now, in one call, rather than page by page
    /// as the workers touch it; a hint, so failures (old kernels) are ignored.
    pub fn prefault(&self, offset: u64, len: u64) {
        #[cfg(target_os = "linux")]
        if let Some(map) = &self.map {
            if map
                .advise_range(memmap2::Advice::PopulateRead, offset as usize, len as usize)
                .is_err()
            {
                let _ = map.advise_range(memmap2::Advice::WillNeed, offset as usize, len as usize);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offset, len);
    }

    /// Drops this process's page-table entries for a range it has finished reading, so resident
    /// memory does not grow with the model; the kernel keeps the pages in its cache.
    pub fn release(&self, offset: u64, len: u64) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            // Only whole pages inside the range: a page shared with a neighbouring tensor stays.
            let page = 4096u64;
            let start = offset.div_ceil(page) * page;
            let end = (offset + len) / page * page;
            if end > start {
                // SAFETY: the mapping is a read-only private mapping of a file that this process
                // never writes, so dropping its pages cannot lose data: a later access refaults
                // the same bytes from the file. No reference into the range is kept by the caller.
                unsafe {
                    let _ = map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start as usize,
                        (end - start) as usize,
                    );
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }
}

pub(crate) fn map_file(path: &Path) -> Result<MappedFile> {
    let (file, meta) = crate::fs::open_regular(path)?;
    let (size, modified) = (meta.len(), meta.modified().ok());
    let map = if size == 0 {
        None
    } else {
        // SAFETY: the mapping is read-only and private. As with every memory-mapped reader, a file
        // truncated by another process while we read it can fault; the README states this.
        let map = unsafe { MmapOptions::new().map_copy_read_only(&file) }
            .map_err(|e| Error::io(path, e))?;
        Some(map)
    };
    Ok(MappedFile {
        path: path.to_path_buf(),
        size,
        metadata: BTreeMap::new(),
        kv: Vec::new(),
        n_tensors: 0,
        map,
        file,
        modified,
    })
}

/// Reads one file of a checkpoint by its content (see [`format::read_part`]).
pub(crate) fn open_part(file: MappedFile) -> Result<(MappedFile, Vec<TensorInfo>, &'static str)> {
    let part = format::read_part(&file.path, file.bytes())?;
    Ok(with_part(file, part))
}

/// The file with its part's metadata, the part's tensors and its format.
pub(crate) fn with_part(
    mut file: MappedFile,
    part: Part,
) -> (MappedFile, Vec<TensorInfo>, &'static str) {
    file.metadata = part.metadata;
    file.kv = part.kv;
    file.n_tensors = part.tensors.len();
    (file, part.tensors, part.format)
}
