//! The content digest of a tensor.
//!
//! The tensor's bytes, as stored, are cut into pieces of [`PIECE`] bytes (the
//! last one shorter); the digest is the SHA-256 of the concatenated SHA-256 digests of the pieces
//! (32 bytes each, in order). An empty tensor has the SHA-256 of no bytes. The pieces are fixed by
//! the bytes alone, so the digest does not depend on the thread count or on how the pass is cut into
//! work items, and any SHA-256 implementation can recompute it:
//!
//! ```text
//! sha256(b"".join(sha256(data[i:i + 2**20]).digest() for i in range(0, len(data), 2**20)))
//! ```

use sha2::{Digest, Sha256};

/// Bytes per piece of a content digest.
pub const PIECE: u64 = 1 << 20;

/// SHA-256 of one piece.
pub fn piece_digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The content digest from the digests of a tensor's pieces, in order.
pub fn combine(pieces: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in pieces {
        h.update(p);
    }
    h.finalize().into()
}

/// The content digest of a tensor's bytes, computed in one go (the reference for the streamed one).
pub fn content_digest(bytes: &[u8]) -> [u8; 32] {
    let pieces: Vec<[u8; 32]> = bytes.chunks(PIECE as usize).map(piece_digest).collect();
    combine(&pieces)
}
