//! File formats modelkin reads. Each format validates everything it reads from a file before any
//! tensor data is touched, and describes tensors as [`TensorInfo`] over a memory-mapped file.

pub mod npy;
pub mod safetensors;

use crate::dtype::DType;

/// Where one tensor's bytes are, as validated from its file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name as written in the file.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape (an empty shape is a scalar with one element).
    pub shape: Vec<u64>,
    /// Byte offset of the first element from the start of the file.
    pub offset: u64,
    /// Byte length (elements × dtype size; checked).
    pub nbytes: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.nbytes / self.dtype.size() as u64
    }
}

/// Bytes a tensor of `shape` and `dtype` occupies, with checked arithmetic (file data is untrusted);
/// the error says which product overflowed.
pub fn checked_nbytes(shape: &[u64], dtype: DType) -> Result<u64, String> {
    let numel = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has more elements than fit in 64 bits"))?;
    numel
        .checked_mul(dtype.size() as u64)
        .ok_or_else(|| format!("shape {shape:?} of {dtype} is larger than 2^64 bytes"))
}

/// Sniffs a file's first bytes for formats modelkin does not read yet, so the user is told what the
/// file looks like instead of a confusing header error.
pub fn sniff_unsupported(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"GGUF") {
        Some("this is a GGUF file; modelkin reads safetensors checkpoints")
    } else if head.starts_with(b"PK\x03\x04") {
        Some(
            "this is a zip archive (a PyTorch .pt/.bin checkpoint?); modelkin reads safetensors \
             checkpoints and never unpickles model files",
        )
    } else if head.first() == Some(&0x80) && head.get(1).is_some_and(|v| (2..=5).contains(v)) {
        Some("this is a Python pickle; modelkin never unpickles model files")
    } else if head.starts_with(b"\x89HDF") {
        Some("this is an HDF5 file; modelkin reads safetensors checkpoints")
    } else {
        None
    }
}
