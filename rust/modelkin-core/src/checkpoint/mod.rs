//! Opening checkpoints: one file (safetensors, GGUF, PyTorch zip, NumPy `.npy` / `.npz`), a folder,
//! or a sharded index. Files are read by what their bytes say, not by their names.
//!
//! Everything read from disk is validated here, before any tensor data is touched; afterwards the
//! streaming code can slice the mapped files without further checks. `mapped` is one file,
//! `folder` is how several files make one checkpoint.

mod folder;
mod mapped;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{gguf, TensorInfo};
use folder::Parts;

pub use folder::{index_shards, INDEX_NAME, MAX_INDEX_BYTES, PYTORCH_NAME};
pub use mapped::MappedFile;

/// A tensor of a checkpoint: its header entry and the file it lives in.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// The validated header entry.
    pub info: TensorInfo,
    /// Index into [`Checkpoint::files`].
    pub file: usize,
}

/// An opened, validated checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// What the user named.
    pub path: PathBuf,
    /// `"safetensors"`, `"gguf"`, `"pytorch"`, `"npy"` or `"npz"`; `"safetensors-sharded"` or
    /// `"pytorch-sharded"` when read through an index or from several files.
    pub format: &'static str,
    /// The mapped files.
    pub files: Vec<MappedFile>,
    /// Tensors sorted by name.
    pub tensors: Vec<Tensor>,
}

impl Checkpoint {
    /// Opens a checkpoint file (`.safetensors`, GGUF, a PyTorch `.bin`/`.pt`/`.pth` zip, `.npy`,
    /// `.npz`), an index file (`*.index.json`), or a folder holding a checkpoint.
    pub fn open(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let parts = if meta.is_dir() {
            folder::open_dir(path)?
        } else if path.to_string_lossy().ends_with(".json") {
            folder::open_index(path)?
        } else {
            folder::one_file(path)?
        };
        assemble(path, parts)
    }

    /// Total number of elements.
    pub fn numel(&self) -> u64 {
        self.tensors.iter().map(|t| t.info.numel()).sum()
    }

    /// Looks a tensor up by name.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors
            .binary_search_by(|t| t.info.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.tensors[i])
    }

    /// Looks a tensor up by name; naming a tensor the checkpoint does not hold is an
    /// [`Error::InvalidArgument`].
    pub fn find(&self, name: &str) -> Result<&Tensor> {
        self.get(name).ok_or_else(|| {
            Error::InvalidArgument(format!("{}: no tensor '{name}'", self.path.display()))
        })
    }

    /// All the key/value metadata of a GGUF checkpoint, vocabulary and merges included (read
    /// again from the mapped header); `None` for other formats.
    pub fn gguf_metadata(&self) -> Result<Option<Vec<(String, gguf::Value)>>> {
        match self.files.first() {
            Some(f) if self.format == "gguf" || self.format == "gguf-split" => {
                Ok(Some(gguf::parse_all(&f.path, f.bytes())?.metadata))
            }
            _ => Ok(None),
        }
    }

    /// The bytes of a tensor.
    pub fn data(&self, t: &Tensor) -> &[u8] {
        let start = t.info.offset as usize;
        &self.files[t.file].bytes()[start..start + t.info.nbytes as usize]
    }
}

/// The checkpoint `path` names, from its files: every tensor name once, tensors sorted by name.
fn assemble(path: &Path, parts: Parts) -> Result<Checkpoint> {
    let Parts {
        format,
        files,
        per_file,
    } = parts;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut tensors = Vec::new();
    for (i, infos) in per_file.into_iter().enumerate() {
        for info in infos {
            if let Some(&other) = seen.get(&info.name) {
                return Err(Error::tensor(
                    &files[i].path,
                    &info.name,
                    format!("also stored in {}", files[other].path.display()),
                ));
            }
            seen.insert(info.name.clone(), i);
            tensors.push(Tensor { info, file: i });
        }
    }
    tensors.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    Ok(Checkpoint {
        path: path.to_path_buf(),
        format,
        files,
        tensors,
    })
}
