//! The one error type of the core. Every variant names the file (and the tensor where there is one)
//! and says what is wrong, so that a user can act on the message alone.

use std::path::{Path, PathBuf};

/// Why an operation on a checkpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder the caller named (or an index pointed to) does not exist.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// The operating system refused to open, stat or map a file.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not in a format modelkin reads.
    #[error("{path}: {reason}")]
    UnsupportedFormat {
        /// The file concerned.
        path: PathBuf,
        /// What it looks like and why it is refused.
        reason: String,
    },
    /// A file's header is malformed (safetensors: length prefix or JSON; GGUF: counts, keys,
    /// values or the tensor table; .npy: the array description).
    #[error("{path}: invalid {format} header: {reason}")]
    InvalidHeader {
        /// The file concerned.
        path: PathBuf,
        /// The file's format, as named in the message ("safetensors", "GGUF", ".npy").
        format: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A container other than a safetensors header is malformed: a zip archive, a PyTorch pickle,
    /// a NumPy `.npy` header. `format` names what the file was read as.
    #[error("{path}: invalid {format}: {reason}")]
    InvalidFile {
        /// The file concerned.
        path: PathBuf,
        /// What the file was read as ("zip archive", "PyTorch checkpoint", ".npy header", …).
        format: &'static str,
        /// What is wrong with it, with the entry and byte offset where there is one.
        reason: String,
    },
    /// One tensor entry of a header is malformed (dtype, shape or offsets).
    #[error("{path}: tensor '{tensor}': {reason}")]
    InvalidTensor {
        /// The file concerned.
        path: PathBuf,
        /// The tensor's name as written in the header.
        tensor: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor's dtype is not one modelkin can decode.
    #[error("{path}: tensor '{tensor}': unknown dtype '{dtype}'")]
    UnknownDtype {
        /// The file concerned.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The dtype string found in the header.
        dtype: String,
    },
    /// A sharded checkpoint's index is malformed or inconsistent with its shards.
    #[error("{path}: invalid checkpoint index: {reason}")]
    InvalidIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An index names a shard file that does not exist.
    #[error("{index}: shard '{shard}' is missing (expected at {path})")]
    MissingShard {
        /// The index file.
        index: PathBuf,
        /// The shard's file name as written in the index.
        shard: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file changed on disk (truncated, rewritten) while it was being read.
    #[error("{path}: {reason}")]
    Changed {
        /// The file.
        path: PathBuf,
        /// What changed.
        reason: String,
    },
    /// The caller passed an argument that cannot be used.
    #[error("{0}")]
    InvalidArgument(String),
    /// The run was cancelled (Ctrl-C or a failing progress callback).
    #[error("cancelled")]
    Cancelled,
}

/// Result alias of the core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`; a missing file becomes [`Error::NotFound`].
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    pub(crate) fn header(path: &Path, reason: impl Into<String>) -> Self {
        Error::header_of(path, "safetensors", reason)
    }

    pub(crate) fn header_of(path: &Path, format: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidHeader {
            path: path.to_path_buf(),
            format,
            reason: reason.into(),
        }
    }

    pub(crate) fn file(path: &Path, format: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidFile {
            path: path.to_path_buf(),
            format,
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(path: &Path, reason: impl Into<String>) -> Self {
        Error::UnsupportedFormat {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn tensor(path: &Path, tensor: &str, reason: impl Into<String>) -> Self {
        Error::InvalidTensor {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn index(path: &Path, reason: impl Into<String>) -> Self {
        Error::InvalidIndex {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
