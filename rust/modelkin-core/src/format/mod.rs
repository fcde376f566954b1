//! File formats modelkin reads. Each format validates everything it reads from a file before any
//! tensor data is touched, and describes tensors as [`TensorInfo`] over a memory-mapped file.
//!
//! safetensors, GGUF (llama.cpp), NumPy `.npy` and `.npz`, and PyTorch zip checkpoints (`torch.save`
//! since 1.6, read through a zip reader and a restricted pickle reader that never executes anything).

pub mod gguf;
pub mod npy;
pub mod npz;
pub mod pickle;
pub mod safetensors;
pub mod torch;
pub mod zip;

use std::collections::BTreeMap;
use std::path::Path;

use crate::dtype::DType;
use crate::error::{Error, Result};

/// How a tensor's rows are stored relative to the logical order modelkin presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowOrder {
    /// Row i is stored as row i.
    #[default]
    Plain,
    /// The rotary layout llama.cpp gives Q and K projections: the rows form `heads` groups (one
    /// per attention head) of 2h rows, and within a group logical row s·h + k (s ∈ {0, 1}, k < h)
    /// is stored as row 2k + s. This undoes the row permutation of llama.cpp's Hugging Face → GGUF
    /// converter, so that the logical tensor is the Hugging Face one.
    HeadPairs {
        /// Number of heads (row groups).
        heads: u64,
    },
}

/// Where one tensor's bytes are, as validated from its file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name as written in the file.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, row-major (an empty shape is a scalar with one element).
    pub shape: Vec<u64>,
    /// Byte offset of the first element from the start of the file.
    pub offset: u64,
    /// Byte length (elements × dtype size, or blocks × block size; checked).
    pub nbytes: u64,
    /// How the rows (first dimension) are stored.
    pub rows: RowOrder,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.dtype.numel(self.nbytes)
    }
}

/// One file of a checkpoint as its format reads it (see [`read_part`]).
#[derive(Debug, Clone)]
pub struct Part {
    /// `"safetensors"`, `"gguf"`, `"pytorch"`, `"npy"` or `"npz"`.
    pub format: &'static str,
    /// The tensors in the file's header.
    pub tensors: Vec<TensorInfo>,
    /// The header's `__metadata__` map (safetensors), or the scalar GGUF metadata as text.
    pub metadata: BTreeMap<String, String>,
    /// The GGUF key/value metadata with its types (empty for other formats). Arrays of strings
    /// and of arrays are validated but not kept ([`gguf::Array::Skipped`]).
    pub kv: Vec<(String, gguf::Value)>,
}

impl Part {
    /// A part of `format` holding `tensors` and no metadata.
    pub(crate) fn new(format: &'static str, tensors: Vec<TensorInfo>) -> Part {
        Part {
            format,
            tensors,
            metadata: BTreeMap::new(),
            kv: Vec::new(),
        }
    }
}

/// Reads one file of a checkpoint by its content, not its name: its format, tensors and metadata.
/// The one dispatch on formats: a new format is one arm here.
pub fn read_part(path: &Path, bytes: &[u8]) -> Result<Part> {
    if bytes.starts_with(gguf::MAGIC) {
        return gguf::read(path, bytes);
    }
    if bytes.starts_with(npy::MAGIC) {
        return npy::read(path, bytes);
    }
    if zip::is_zip(bytes) {
        let archive = zip::Archive::read(path, bytes)?;
        return if torch::is_torch(&archive) {
            torch::read(path, bytes, &archive)
        } else {
            npz::read(path, bytes, &archive)
        };
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if torch::EXTENSIONS.contains(&ext.as_str()) || ext == "npz" {
        // Named like a zip-based format but not one: say what it looks like, unless it is a
        // renamed safetensors file.
        if let Some(what) = sniff_unsupported(bytes) {
            return Err(Error::unsupported(path, what));
        }
        if safetensors::parse_header(path, bytes).is_err() {
            let what = if ext == "npz" {
                "a NumPy .npz (a zip archive)"
            } else {
                "a PyTorch zip checkpoint (torch.save since 1.6)"
            };
            return Err(Error::unsupported(
                path,
                format!("not {what}, nor safetensors: the file does not start like a zip archive"),
            ));
        }
    }
    safetensors::read(path, bytes)
}

/// Bytes a tensor of `shape` and `dtype` occupies, with checked arithmetic (file data is untrusted);
/// the error says which product overflowed, or that the elements are not whole blocks of a
/// block-quantised dtype.
pub fn checked_nbytes(shape: &[u64], dtype: DType) -> std::result::Result<u64, String> {
    let numel = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has more elements than fit in 64 bits"))?;
    if !numel.is_multiple_of(dtype.block_len() as u64) {
        return Err(format!(
            "shape {shape:?} holds {numel} elements, not a whole number of {dtype} blocks of {}",
            dtype.block_len()
        ));
    }
    dtype
        .nbytes(numel)
        .ok_or_else(|| format!("shape {shape:?} of {dtype} is larger than 2^64 bytes"))
}

/// Sorts `tensors` by where their data start and returns the first pair (earlier, later) whose
/// bytes overlap, if any. Each tensor is compared with the furthest-reaching one before it, not
/// just its neighbour: an empty tensor in between must not hide an overlap.
pub fn first_overlap(tensors: &mut [TensorInfo]) -> Option<(&TensorInfo, &TensorInfo)> {
    tensors.sort_by_key(|t| (t.offset, t.nbytes));
    let mut reach: Option<&TensorInfo> = None;
    for t in tensors.iter().filter(|t| t.nbytes > 0) {
        if let Some(prev) = reach {
            if prev.offset + prev.nbytes > t.offset {
                return Some((prev, t));
            }
        }
        if reach.is_none_or(|p| t.offset + t.nbytes > p.offset + p.nbytes) {
            reach = Some(t);
        }
    }
    None
}

/// The first bytes of a PyTorch checkpoint in the legacy format (`torch.save` before 1.6, or with
/// `_use_new_zipfile_serialization=False`): a protocol-2 pickle of torch's magic number.
const LEGACY_TORCH: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// Sniffs a file's first bytes for formats modelkin does not read, so the user is told what the
/// file looks like instead of a confusing header error.
pub fn sniff_unsupported(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(LEGACY_TORCH) {
        Some(
            "this is a PyTorch checkpoint in the legacy format (a raw pickle, written before \
             PyTorch 1.6 or with _use_new_zipfile_serialization=False); modelkin never unpickles \
             model files: re-save it with a current torch.save or convert it to safetensors",
        )
    } else if head.first() == Some(&0x80) && head.get(1).is_some_and(|v| (2..=5).contains(v)) {
        Some(
            "this is a Python pickle; modelkin never unpickles model files (convert it to \
             safetensors)",
        )
    } else if head.starts_with(b"\x89HDF") {
        Some(
            "this is an HDF5 file; modelkin reads safetensors, GGUF, PyTorch and NumPy checkpoints",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickles_and_legacy_torch_files_are_recognised() {
        let legacy = [LEGACY_TORCH, b".\x80\x02M\xe9\x03"].concat();
        assert!(sniff_unsupported(&legacy)
            .unwrap()
            .contains("legacy format"));
        assert!(sniff_unsupported(b"\x80\x04\x95")
            .unwrap()
            .contains("never unpickles"));
        assert!(sniff_unsupported(b"GGUF\x03").is_none()); // read by format::gguf
        assert!(sniff_unsupported(b"PK\x03\x04").is_none());
    }
}
