//! llama.cpp's GGUF format, versions 2 and 3 (little-endian).
//!
//! Layout: the magic `GGUF`, a `u32` version, a `u64` tensor count, a `u64` key/value count; the
//! key/value metadata (a string key, a `u32` value type, the value; arrays hold a `u32` element
//! type, a `u64` count and the elements, and may nest); the tensor table (a string name, a `u32`
//! dimension count, that many `u64` extents `ne` innermost first, a `u32` ggml type, a `u64` offset
//! into the data section); then, at the next multiple of the alignment (`general.alignment`,
//! default 32), the data section. Strings are a `u64` byte length and UTF-8 bytes.
//!
//! Everything is validated before any tensor data is touched, with the checks a hostile file
//! needs: every count and length is bounded by the bytes left in the file *before* anything is
//! allocated for it, arrays nest at most [`MAX_ARRAY_DEPTH`] deep, extents and byte sizes use
//! checked arithmetic, a block-quantised tensor's rows are whole blocks, offsets are aligned and
//! inside the file, tensors do not overlap, names and keys are unique, and unknown ggml types are
//! refused with their number. Nothing here panics on any input.
//!
//! Shapes are presented row-major (the Hugging Face order): `ne` reversed. In llama-architecture
//! files the rows of `blk.N.attn_q` and `blk.N.attn_k` (weights and biases) are marked with
//! [`RowOrder::HeadPairs`], so that readers undo the permutation llama.cpp's converter applied
//! to them and see the Hugging Face tensors.

use std::collections::HashSet;
use std::fmt::Display;
use std::path::Path;

use super::{first_overlap, Part, RowOrder, TensorInfo};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The magic bytes every GGUF file starts with.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a ggml tensor has.
pub const MAX_DIMS: u32 = 4;
/// Deepest nesting of arrays accepted (hostile nesting must not exhaust the stack).
pub const MAX_ARRAY_DEPTH: usize = 16;

const FORMAT: &str = "GGUF";
/// magic + version + tensor count + key/value count.
const FIXED_HEADER: u64 = 24;
/// The smallest key/value entry: an empty key, a type, a one-byte value.
const MIN_KV: u64 = 8 + 4 + 1;
/// The smallest tensor-table entry: an empty name, no dimensions, a type, an offset.
const MIN_TENSOR: u64 = 8 + 4 + 4 + 8;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `UINT8`
    U8(u8),
    /// `INT8`
    I8(i8),
    /// `UINT16`
    U16(u16),
    /// `INT16`
    I16(i16),
    /// `UINT32`
    U32(u32),
    /// `INT32`
    I32(i32),
    /// `FLOAT32`
    F32(f32),
    /// `BOOL` (a byte that is 0 or 1)
    Bool(bool),
    /// `STRING` (bytes that are not UTF-8 are replaced by U+FFFD)
    Str(String),
    /// `ARRAY`
    Array(Array),
    /// `UINT64`
    U64(u64),
    /// `INT64`
    I64(i64),
    /// `FLOAT64`
    F64(f64),
}

/// An array value: elements of one type, stored compactly.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    /// `UINT8` elements.
    U8(Vec<u8>),
    /// `INT8` elements.
    I8(Vec<i8>),
    /// `UINT16` elements.
    U16(Vec<u16>),
    /// `INT16` elements.
    I16(Vec<i16>),
    /// `UINT32` elements.
    U32(Vec<u32>),
    /// `INT32` elements.
    I32(Vec<i32>),
    /// `FLOAT32` elements.
    F32(Vec<f32>),
    /// `BOOL` elements.
    Bool(Vec<bool>),
    /// `STRING` elements.
    Str(Vec<String>),
    /// Nested arrays.
    Array(Vec<Array>),
    /// `UINT64` elements.
    U64(Vec<u64>),
    /// `INT64` elements.
    I64(Vec<i64>),
    /// `FLOAT64` elements.
    F64(Vec<f64>),
    /// An array of strings or of arrays that [`parse`] validated but did not keep (a vocabulary
    /// can hold hundreds of thousands of strings); [`parse_all`] keeps them.
    Skipped {
        /// The GGUF element type (8: `STRING`, 9: `ARRAY`).
        ty: u32,
        /// Number of elements.
        len: u64,
    },
}

fn type_name(ty: u32) -> &'static str {
    match ty {
        0 => "UINT8",
        1 => "INT8",
        2 => "UINT16",
        3 => "INT16",
        4 => "UINT32",
        5 => "INT32",
        6 => "FLOAT32",
        7 => "BOOL",
        8 => "STRING",
        9 => "ARRAY",
        10 => "UINT64",
        11 => "INT64",
        12 => "FLOAT64",
        _ => "unknown",
    }
}

/// Bytes the smallest value of type `ty` takes in a file; `None` for an unknown type.
fn min_size(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

impl Value {
    /// The GGUF name of the value's type (`UINT32`, `STRING`, `ARRAY`, …).
    pub fn type_name(&self) -> &'static str {
        type_name(match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        })
    }

    /// The value as a non-negative integer, when it is an integer of any width that is ≥ 0.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The string, when the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A scalar as text (for the string metadata map); `None` for arrays.
    pub fn scalar_text(&self) -> Option<String> {
        Some(match self {
            Value::U8(v) => v.to_string(),
            Value::I8(v) => v.to_string(),
            Value::U16(v) => v.to_string(),
            Value::I16(v) => v.to_string(),
            Value::U32(v) => v.to_string(),
            Value::I32(v) => v.to_string(),
            Value::F32(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
            Value::Str(s) => s.clone(),
            Value::U64(v) => v.to_string(),
            Value::I64(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
            Value::Array(_) => return None,
        })
    }
}

impl Array {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::Str(v) => v.len(),
            Array::Array(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Skipped { len, .. } => *len as usize,
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a non-negative integer, when the array holds integers and it is ≥ 0.
    pub fn get_u64(&self, i: usize) -> Option<u64> {
        match self {
            Array::U8(v) => v.get(i).map(|&x| x as u64),
            Array::U16(v) => v.get(i).map(|&x| x as u64),
            Array::U32(v) => v.get(i).map(|&x| x as u64),
            Array::U64(v) => v.get(i).copied(),
            Array::I8(v) => v.get(i).and_then(|&x| u64::try_from(x).ok()),
            Array::I16(v) => v.get(i).and_then(|&x| u64::try_from(x).ok()),
            Array::I32(v) => v.get(i).and_then(|&x| u64::try_from(x).ok()),
            Array::I64(v) => v.get(i).and_then(|&x| u64::try_from(x).ok()),
            _ => None,
        }
    }
}

/// A parsed and validated GGUF header.
#[derive(Debug, Clone)]
pub struct Header {
    /// Format version (2 or 3).
    pub version: u32,
    /// Alignment of the data section and of every tensor's offset in it.
    pub alignment: u64,
    /// Byte offset of the data section from the start of the file.
    pub data_start: u64,
    /// The key/value metadata, in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensors in file order (by offset), shapes row-major.
    pub tensors: Vec<TensorInfo>,
}

impl Header {
    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        get(&self.metadata, key)
    }
}

pub(crate) fn get<'a>(kv: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// What a ggml type number stands for.
enum GgmlType {
    Known(DType),
    Unsupported(&'static str),
    Unknown,
}

fn ggml_type(ty: u32) -> GgmlType {
    use GgmlType::{Known, Unsupported};
    match ty {
        0 => Known(DType::F32),
        1 => Known(DType::F16),
        2 => Known(DType::Q4_0),
        3 => Known(DType::Q4_1),
        6 => Known(DType::Q5_0),
        7 => Known(DType::Q5_1),
        8 => Known(DType::Q8_0),
        10 => Known(DType::Q2_K),
        11 => Known(DType::Q3_K),
        12 => Known(DType::Q4_K),
        13 => Known(DType::Q5_K),
        14 => Known(DType::Q6_K),
        15 => Known(DType::Q8_K),
        24 => Known(DType::I8),
        25 => Known(DType::I16),
        26 => Known(DType::I32),
        27 => Known(DType::I64),
        28 => Known(DType::F64),
        30 => Known(DType::BF16),
        4 => Unsupported("Q4_2 (removed from ggml in 2023)"),
        5 => Unsupported("Q4_3 (removed from ggml in 2023)"),
        9 => Unsupported("Q8_1"),
        16 => Unsupported("IQ2_XXS"),
        17 => Unsupported("IQ2_XS"),
        18 => Unsupported("IQ3_XXS"),
        19 => Unsupported("IQ1_S"),
        20 => Unsupported("IQ4_NL"),
        21 => Unsupported("IQ3_S"),
        22 => Unsupported("IQ2_S"),
        23 => Unsupported("IQ4_XS"),
        29 => Unsupported("IQ1_M"),
        31..=33 => Unsupported("Q4_0_4_4/Q4_0_4_8/Q4_0_8_8 (removed from ggml)"),
        34 => Unsupported("TQ1_0"),
        35 => Unsupported("TQ2_0"),
        36..=38 => Unsupported("IQ4_NL_4_4/IQ4_NL_4_8/IQ4_NL_8_8 (removed from ggml)"),
        39 => Unsupported("MXFP4"),
        40 => Unsupported("NVFP4"),
        41 => Unsupported("Q1_0"),
        _ => GgmlType::Unknown,
    }
}

/// The ggml types modelkin decodes, for messages.
const DECODED: &str = "F32, F16, BF16, F64, I8, I16, I32, I64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, \
                       Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K";

/// A cursor over the file's bytes that refuses to read past its end.
struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
    /// Keep arrays of strings and of arrays (else validate them and keep their length only).
    keep: bool,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn bad(&self, at: usize, reason: impl Display) -> Error {
        Error::header_of(self.path, FORMAT, format!("at byte {at}: {reason}"))
    }

    fn take(&mut self, n: u64, what: &dyn Display) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.bad(
                self.pos,
                format!(
                    "{what} ({n} bytes) runs past the end of the file ({} bytes; truncated?)",
                    self.bytes.len()
                ),
            ));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn fixed<const N: usize>(&mut self, what: &dyn Display) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Display) -> Result<u32> {
        Ok(u32::from_le_bytes(self.fixed(what)?))
    }

    fn u64(&mut self, what: &dyn Display) -> Result<u64> {
        Ok(u64::from_le_bytes(self.fixed(what)?))
    }

    fn bool(&mut self, what: &dyn Display) -> Result<bool> {
        let at = self.pos;
        match self.fixed::<1>(what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.bad(at, format!("{what}: BOOL value {v} is neither 0 nor 1"))),
        }
    }

    fn string(&mut self, what: &dyn Display) -> Result<String> {
        let at = self.pos;
        let len = self.u64(&format_args!("length of {what}"))?;
        if len > self.remaining() {
            return Err(self.bad(
                at,
                format!(
                    "{what} claims {len} bytes, more than the {} left in the file",
                    self.remaining()
                ),
            ));
        }
        let raw = self.take(len, what)?;
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    /// Validates a string (its length is within the file) without keeping it.
    fn skip_string(&mut self, what: &dyn Display) -> Result<()> {
        let at = self.pos;
        let len = self.u64(&format_args!("length of {what}"))?;
        if len > self.remaining() {
            return Err(self.bad(
                at,
                format!(
                    "{what} claims {len} bytes, more than the {} left in the file",
                    self.remaining()
                ),
            ));
        }
        self.pos += len as usize;
        Ok(())
    }

    fn value(&mut self, ty: u32, what: &dyn Display) -> Result<Value> {
        let at = self.pos;
        Ok(match ty {
            0 => Value::U8(self.fixed::<1>(what)?[0]),
            1 => Value::I8(self.fixed::<1>(what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.fixed(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.fixed(what)?)),
            4 => Value::U32(u32::from_le_bytes(self.fixed(what)?)),
            5 => Value::I32(i32::from_le_bytes(self.fixed(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.fixed(what)?)),
            7 => Value::Bool(self.bool(what)?),
            8 => Value::Str(self.string(what)?),
            9 => Value::Array(self.array(1, what)?),
            10 => Value::U64(u64::from_le_bytes(self.fixed(what)?)),
            11 => Value::I64(i64::from_le_bytes(self.fixed(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.fixed(what)?)),
            t => return Err(self.bad(at, format!("{what} has unknown value type {t}"))),
        })
    }

    /// An array (its element type, count and elements); `depth` counts the enclosing arrays.
    fn array(&mut self, depth: usize, what: &dyn Display) -> Result<Array> {
        let at = self.pos;
        if depth > MAX_ARRAY_DEPTH {
            return Err(self.bad(
                at,
                format!("{what}: arrays nested more than {MAX_ARRAY_DEPTH} deep"),
            ));
        }
        let ty = self.u32(&format_args!("element type of {what}"))?;
        let count = self.u64(&format_args!("element count of {what}"))?;
        let Some(min) = min_size(ty) else {
            return Err(self.bad(at, format!("{what}: array of unknown value type {ty}")));
        };
        // Bound the count by the bytes left before anything is allocated for it.
        let left = self.remaining();
        if count.checked_mul(min).is_none_or(|n| n > left) {
            return Err(self.bad(
                at,
                format!(
                    "{what}: an array of {count} {} values cannot fit in the {left} bytes left in the file",
                    type_name(ty)
                ),
            ));
        }
        let n = count as usize;
        macro_rules! fixed {
            ($variant:ident, $t:ty, $size:expr) => {{
                let raw = self.take(count * $size, what)?;
                Array::$variant(
                    raw.as_chunks::<$size>()
                        .0
                        .iter()
                        .map(|c| <$t>::from_le_bytes(*c))
                        .collect(),
                )
            }};
        }
        Ok(match ty {
            0 => Array::U8(self.take(count, what)?.to_vec()),
            1 => Array::I8(self.take(count, what)?.iter().map(|&b| b as i8).collect()),
            2 => fixed!(U16, u16, 2),
            3 => fixed!(I16, i16, 2),
            4 => fixed!(U32, u32, 4),
            5 => fixed!(I32, i32, 4),
            6 => fixed!(F32, f32, 4),
            7 => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bool(what)?);
                }
                Array::Bool(v)
            }
            8 if !self.keep => {
                for i in 0..n {
                    self.skip_string(&format_args!("element {i} of {what}"))?;
                }
                Array::Skipped { ty, len: count }
            }
            8 => {
                // Each string takes at least its 8-byte length in the file; the capacity grows
                // with what is actually read.
                let mut v = Vec::with_capacity(n.min(1 << 16));
                for i in 0..n {
                    v.push(self.string(&format_args!("element {i} of {what}"))?);
                }
                Array::Str(v)
            }
            9 => {
                let mut v = Vec::with_capacity(if self.keep { n.min(1 << 12) } else { 0 });
                for i in 0..n {
                    let a = self.array(depth + 1, &format_args!("element {i} of {what}"))?;
                    if self.keep {
                        v.push(a);
                    }
                }
                if self.keep {
                    Array::Array(v)
                } else {
                    Array::Skipped { ty, len: count }
                }
            }
            10 => fixed!(U64, u64, 8),
            11 => fixed!(I64, i64, 8),
            12 => fixed!(F64, f64, 8),
            _ => unreachable!("min_size accepted only the known types"),
        })
    }
}

/// A tensor-table entry as read, before validation.
struct RawTensor {
    name: String,
    ne: Vec<u64>,
    ty: u32,
    offset: u64,
}

/// Parses and validates the header of a GGUF file whose full contents are `bytes`. Arrays of
/// strings and of arrays (the vocabulary, the merges) are validated but kept as
/// [`Array::Skipped`]; [`parse_all`] keeps them too.
///
/// `path` is used for messages only.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Header> {
    parse_with(path, bytes, false)
}

/// [`parse`], keeping every metadata value.
pub fn parse_all(path: &Path, bytes: &[u8]) -> Result<Header> {
    parse_with(path, bytes, true)
}

fn parse_with(path: &Path, bytes: &[u8], keep: bool) -> Result<Header> {
    let file_len = bytes.len() as u64;
    let mut r = Reader {
        path,
        bytes,
        pos: 0,
        keep,
    };
    if !bytes.starts_with(MAGIC) {
        return Err(r.bad(0, "not a GGUF file (the magic bytes are not \"GGUF\")"));
    }
    if file_len < FIXED_HEADER {
        return Err(Error::header_of(
            path,
            FORMAT,
            format!("file is {file_len} bytes, too short for the {FIXED_HEADER}-byte GGUF header"),
        ));
    }
    r.pos = 4;
    let version = r.u32(&"version")?;
    match version {
        2 | 3 => {}
        v if v.trailing_zeros() >= 16 && matches!(v.swap_bytes(), 1..=3) => {
            return Err(Error::UnsupportedFormat {
                path: path.to_path_buf(),
                reason: format!(
                    "big-endian GGUF (version {}); modelkin reads little-endian GGUF files",
                    v.swap_bytes()
                ),
            })
        }
        1 => {
            return Err(Error::UnsupportedFormat {
                path: path.to_path_buf(),
                reason: "GGUF version 1 (2023) is not supported: convert the model again with a \
                         current llama.cpp (versions 2 and 3 are read)"
                    .into(),
            })
        }
        v => {
            return Err(r.bad(
                4,
                format!("GGUF version {v} is not one modelkin reads (2, 3)"),
            ))
        }
    }
    let n_tensors = r.u64(&"tensor count")?;
    let n_kv = r.u64(&"metadata count")?;
    let left = r.remaining();
    if n_kv.checked_mul(MIN_KV).is_none_or(|n| n > left) {
        return Err(r.bad(
            16,
            format!("the file claims {n_kv} metadata entries; the {left} bytes left could hold at most {}", left / MIN_KV),
        ));
    }
    if n_tensors.checked_mul(MIN_TENSOR).is_none_or(|n| n > left) {
        return Err(r.bad(
            8,
            format!(
                "the file claims {n_tensors} tensors; the {left} bytes left could hold at most {}",
                left / MIN_TENSOR
            ),
        ));
    }

    let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv as usize);
    let mut keys = HashSet::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let at = r.pos;
        let key = r.string(&format_args!("key of metadata entry {i}"))?;
        let ty = r.u32(&format_args!("value type of '{key}'"))?;
        let value = r.value(ty, &format_args!("value of '{key}'"))?;
        if !keys.insert(key.clone()) {
            return Err(r.bad(at, format!("metadata key '{key}' appears twice")));
        }
        metadata.push((key, value));
    }

    let alignment = match get(&metadata, "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if *a > 0 && a.is_power_of_two() => *a as u64,
        Some(Value::U32(a)) => {
            return Err(Error::header_of(
                path,
                FORMAT,
                format!("general.alignment is {a}, not a power of two"),
            ))
        }
        Some(v) => {
            return Err(Error::header_of(
                path,
                FORMAT,
                format!("general.alignment is a {}, not a UINT32", v.type_name()),
            ))
        }
    };

    let left = r.remaining();
    if n_tensors.checked_mul(MIN_TENSOR).is_none_or(|n| n > left) {
        return Err(r.bad(
            r.pos,
            format!("the file claims {n_tensors} tensors; the {left} bytes left after the metadata could hold at most {}", left / MIN_TENSOR),
        ));
    }
    let mut raw = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name = r.string(&format_args!("name of tensor {i}"))?;
        if !names.insert(name.clone()) {
            return Err(Error::tensor(
                path,
                &name,
                "appears twice in the tensor table",
            ));
        }
        let n_dims = r.u32(&format_args!("dimension count of tensor '{name}'"))?;
        if n_dims > MAX_DIMS {
            return Err(Error::tensor(
                path,
                &name,
                format!("{n_dims} dimensions; GGUF tensors have at most {MAX_DIMS}"),
            ));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            let v = r.u64(&format_args!("extent ne[{d}] of tensor '{name}'"))?;
            if v > i64::MAX as u64 {
                return Err(Error::tensor(
                    path,
                    &name,
                    format!("extent ne[{d}] = {v} is larger than 2^63 − 1"),
                ));
            }
            ne.push(v);
        }
        let ty = r.u32(&format_args!("type of tensor '{name}'"))?;
        let offset = r.u64(&format_args!("offset of tensor '{name}'"))?;
        raw.push(RawTensor {
            name,
            ne,
            ty,
            offset,
        });
    }
    let data_start = (r.pos as u64)
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| r.bad(r.pos, "the data section's start overflows"))?;

    let heads = Heads::of(path, &metadata)?;
    let mut tensors = Vec::with_capacity(raw.len());
    for t in raw {
        tensors.push(tensor_info(
            path, t, alignment, data_start, file_len, &heads,
        )?);
    }
    if let Some((prev, t)) = first_overlap(&mut tensors) {
        return Err(Error::tensor(
            path,
            &t.name,
            format!(
                "data at offset {} overlaps tensor '{}'",
                t.offset - data_start,
                prev.name
            ),
        ));
    }
    Ok(Header {
        version,
        alignment,
        data_start,
        metadata,
        tensors,
    })
}

fn tensor_info(
    path: &Path,
    t: RawTensor,
    alignment: u64,
    data_start: u64,
    file_len: u64,
    heads: &Heads,
) -> Result<TensorInfo> {
    let bad = |reason: String| Error::tensor(path, &t.name, reason);
    let dtype = match ggml_type(t.ty) {
        GgmlType::Known(d) => d,
        GgmlType::Unsupported(what) => {
            return Err(Error::UnsupportedFormat {
                path: path.to_path_buf(),
                reason: format!(
                    "tensor '{}': ggml type {} ({what}) is not one modelkin decodes ({DECODED})",
                    t.name, t.ty
                ),
            })
        }
        GgmlType::Unknown => {
            return Err(Error::UnknownDtype {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                dtype: format!("ggml type {}", t.ty),
            })
        }
    };
    let block = dtype.block_len() as u64;
    let row = t.ne.first().copied().unwrap_or(1);
    if !row.is_multiple_of(block) {
        return Err(bad(format!(
            "row length ne[0] = {row} is not a multiple of the {dtype} block length {block}"
        )));
    }
    let shape: Vec<u64> = t.ne.iter().rev().copied().collect();
    let nbytes = super::checked_nbytes(&shape, dtype).map_err(&bad)?;
    if !t.offset.is_multiple_of(alignment) {
        return Err(bad(format!(
            "data offset {} is not a multiple of the alignment {alignment}",
            t.offset
        )));
    }
    let end = data_start
        .checked_add(t.offset)
        .and_then(|s| s.checked_add(nbytes));
    if end.is_none_or(|e| e > file_len) {
        return Err(bad(format!(
            "data at offset {} ({nbytes} bytes from byte {}) runs past the end of the file ({file_len} bytes; truncated?)",
            t.offset,
            data_start.saturating_add(t.offset)
        )));
    }
    let rows = heads.row_order(path, &t.name, &shape)?;
    Ok(TensorInfo {
        name: t.name,
        dtype,
        shape,
        offset: data_start + t.offset,
        nbytes,
        rows,
    })
}

/// Sets the row order of `tensors` from the metadata `kv` — for the shards of a split GGUF, whose
/// first shard alone holds the architecture and head counts the Q/K row order depends on.
pub fn apply_row_orders(
    path: &Path,
    kv: &[(String, Value)],
    tensors: &mut [TensorInfo],
) -> Result<()> {
    let heads = Heads::of(path, kv)?;
    for t in tensors.iter_mut() {
        t.rows = heads.row_order(path, &t.name, &t.shape)?;
    }
    Ok(())
}

/// `(split.no, split.count)` of a shard of a split GGUF (llama.cpp's `gguf-split`), `None` for a
/// whole file.
pub fn split_of(kv: &[(String, Value)]) -> Option<(u64, u64)> {
    let count = get(kv, "split.count")?.as_u64()?;
    (count > 1).then(|| Some((get(kv, "split.no")?.as_u64()?, count)))?
}

/// The head counts that llama.cpp's converter used to permute the rows of Q and K (llama
/// architecture only).
struct Heads<'a> {
    q: Option<&'a Value>,
    kv: Option<&'a Value>,
    llama: bool,
}

impl<'a> Heads<'a> {
    fn of(path: &Path, kv: &'a [(String, Value)]) -> Result<Heads<'a>> {
        let arch = get(kv, "general.architecture");
        if let Some(v) = arch {
            if v.as_str().is_none() {
                return Err(Error::header_of(
                    path,
                    FORMAT,
                    format!("general.architecture is a {}, not a STRING", v.type_name()),
                ));
            }
        }
        let llama = arch.and_then(Value::as_str) == Some("llama");
        Ok(Heads {
            q: get(kv, "llama.attention.head_count"),
            kv: get(kv, "llama.attention.head_count_kv"),
            llama,
        })
    }

    /// How tensor `name` stores its rows: [`RowOrder::HeadPairs`] for the Q and K projections of
    /// a llama file, plain otherwise.
    fn row_order(&self, path: &Path, name: &str, shape: &[u64]) -> Result<RowOrder> {
        if !self.llama {
            return Ok(RowOrder::Plain);
        }
        let Some((layer, which)) = qk_layer(name) else {
            return Ok(RowOrder::Plain);
        };
        let (key, value) = match which {
            'q' => ("llama.attention.head_count", self.q),
            // llama.cpp takes the KV head count to be the head count when it is absent.
            _ => match self.kv {
                Some(v) => ("llama.attention.head_count_kv", Some(v)),
                None => ("llama.attention.head_count", self.q),
            },
        };
        let bad = |reason: String| Error::tensor(path, name, reason);
        let Some(value) = value else {
            return Err(bad(format!(
                "{key} is missing: it is needed to undo the row permutation llama.cpp's converter applies to Q and K"
            )));
        };
        let heads = match value {
            Value::Array(a) => a.get_u64(layer as usize),
            v => v.as_u64(),
        };
        let rows = shape.first().copied().unwrap_or(1);
        let halves = |h: u64| {
            h.checked_mul(2)
                .is_some_and(|g| g > 0 && rows.is_multiple_of(g))
        };
        match heads {
            Some(h) if halves(h) => Ok(RowOrder::HeadPairs { heads: h }),
            Some(h) => Err(bad(format!(
                "{rows} rows cannot be {h} heads of two halves ({key} = {h})"
            ))),
            None => Err(bad(format!(
                "{key} ({}) gives no head count for layer {layer}",
                value.type_name()
            ))),
        }
    }
}

/// `(layer, 'q' | 'k')` for `blk.N.attn_q.{weight,bias}` and `blk.N.attn_k.{weight,bias}`.
fn qk_layer(name: &str) -> Option<(u64, char)> {
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: u64 = layer.parse().ok()?;
    let which = match rest {
        "attn_q.weight" | "attn_q.bias" => 'q',
        "attn_k.weight" | "attn_k.bias" => 'k',
        _ => return None,
    };
    Some((layer, which))
}

/// A GGUF file as a checkpoint part: its tensors, and its metadata (scalars as text in
/// [`Part::metadata`], everything in [`Part::kv`]).
pub fn read(path: &Path, bytes: &[u8]) -> Result<Part> {
    let header = parse(path, bytes)?;
    Ok(Part {
        metadata: header
            .metadata
            .iter()
            .filter_map(|(k, v)| v.scalar_text().map(|t| (k.clone(), t)))
            .collect(),
        kv: header.metadata,
        ..Part::new("gguf", header.tensors)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::gguf::serialize;

    fn kv(k: &str, v: Value) -> (String, Value) {
        (k.to_string(), v)
    }

    fn t(name: &str, ty: u32, ne: &[u64], data: Vec<u8>) -> (String, u32, Vec<u64>, Vec<u8>) {
        (name.to_string(), ty, ne.to_vec(), data)
    }

    fn err(bytes: &[u8]) -> String {
        parse(Path::new("m.gguf"), bytes).unwrap_err().to_string()
    }

    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend(version.to_le_bytes());
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b
    }

    fn small() -> Vec<u8> {
        serialize(
            &[
                kv("general.architecture", Value::Str("test".into())),
                kv(
                    "tokenizer.ggml.tokens",
                    Value::Array(Array::Str(vec!["a".into(), "b".into()])),
                ),
            ],
            &[
                t("w", 0, &[3, 2], vec![0; 24]),
                t("q", 8, &[32, 2], vec![0; 68]),
            ],
            32,
        )
    }

    #[test]
    fn a_valid_file_is_read_with_row_major_shapes() {
        let h = parse_all(Path::new("x.gguf"), &small()).unwrap();
        assert_eq!((h.version, h.alignment), (3, 32));
        assert_eq!(h.data_start % 32, 0);
        let w = h.tensors.iter().find(|t| t.name == "w").unwrap();
        assert_eq!(
            (w.dtype, w.shape.clone(), w.nbytes),
            (DType::F32, vec![2, 3], 24)
        );
        assert_eq!(w.offset, h.data_start);
        let q = h.tensors.iter().find(|t| t.name == "q").unwrap();
        assert_eq!(
            (q.dtype, q.shape.clone(), q.numel()),
            (DType::Q8_0, vec![2, 32], 64)
        );
        assert_eq!(q.offset, h.data_start + 32);
        assert_eq!(
            h.get("tokenizer.ggml.tokens"),
            Some(&Value::Array(Array::Str(vec!["a".into(), "b".into()])))
        );
    }

    #[test]
    fn every_value_type_and_nested_arrays_round_trip() {
        let values = vec![
            kv("u8", Value::U8(7)),
            kv("i8", Value::I8(-7)),
            kv("u16", Value::U16(700)),
            kv("i16", Value::I16(-700)),
            kv("u32", Value::U32(70_000)),
            kv("i32", Value::I32(-70_000)),
            kv("f32", Value::F32(1.5)),
            kv("bool", Value::Bool(true)),
            kv("str", Value::Str("héllo".into())),
            kv("u64", Value::U64(1 << 40)),
            kv("i64", Value::I64(-(1 << 40))),
            kv("f64", Value::F64(-2.25)),
            kv(
                "nested",
                Value::Array(Array::Array(vec![
                    Array::I32(vec![1, -2]),
                    Array::Array(vec![Array::Str(vec!["x".into()])]),
                    Array::F64(vec![]),
                ])),
            ),
            kv("bools", Value::Array(Array::Bool(vec![true, false]))),
            kv("f32s", Value::Array(Array::F32(vec![0.5, -1.0]))),
            kv("u64s", Value::Array(Array::U64(vec![u64::MAX]))),
        ];
        let bytes = serialize(&values, &[], 32);
        let h = parse_all(Path::new("x"), &bytes).unwrap();
        assert_eq!(h.metadata, values);
        assert!(h.tensors.is_empty());
        // Without keeping them, arrays of strings and of arrays are validated and counted only.
        let light = parse(Path::new("x"), &bytes).unwrap();
        assert_eq!(
            light.get("nested"),
            Some(&Value::Array(Array::Skipped { ty: 9, len: 3 }))
        );
        assert_eq!(light.get("f32s"), h.get("f32s"));
    }

    #[test]
    fn a_custom_alignment_is_honoured_and_checked() {
        let b = serialize(&[], &[t("w", 0, &[3], vec![0; 12])], 64);
        let h = parse(Path::new("x"), &b).unwrap();
        assert_eq!((h.alignment, h.data_start % 64), (64, 0));
        let b = serialize(
            &[kv("general.alignment", Value::U32(48))],
            &[t("w", 0, &[3], vec![0; 12])],
            32,
        );
        assert!(err(&b).contains("not a power of two"));
        let b = serialize(&[kv("general.alignment", Value::U64(64))], &[], 32);
        assert!(err(&b).contains("UINT64, not a UINT32"));
        let b = serialize(&[kv("general.alignment", Value::U32(0))], &[], 32);
        assert!(err(&b).contains("not a power of two"));
    }

    #[test]
    fn bad_magic_versions_and_short_files_are_refused() {
        assert!(err(b"GGU").contains("magic"));
        assert!(err(b"GGUF\x03\0\0\0").contains("too short"));
        assert!(err(&header(4, 0, 0)).contains("version 4"));
        assert!(err(&header(1, 0, 0)).contains("version 1"));
        assert!(err(&header(3u32.swap_bytes(), 0, 0)).contains("big-endian"));
        assert!(parse(Path::new("x"), &header(2, 0, 0)).is_ok());
    }

    #[test]
    fn absurd_counts_are_refused_before_allocating() {
        assert!(err(&header(3, 1 << 62, 0)).contains("claims 4611686018427387904 tensors"));
        assert!(err(&header(3, u64::MAX, 0)).contains("tensors"));
        assert!(err(&header(3, 0, 1 << 60)).contains("metadata entries"));
        // A key whose length is 2^60.
        let mut b = header(3, 0, 1);
        b.extend((1u64 << 60).to_le_bytes());
        b.extend([0u8; 8]);
        let e = err(&b);
        assert!(
            e.contains("claims 1152921504606846976 bytes") && e.contains("at byte 24"),
            "{e}"
        );
        // A string value of 2^60 bytes.
        let mut b = header(3, 0, 1);
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(8u32.to_le_bytes());
        b.extend((1u64 << 60).to_le_bytes());
        assert!(err(&b).contains("value of 'k' claims"));
        // An array of 2^62 UINT32 elements, and one whose byte count overflows.
        for count in [1u64 << 62, u64::MAX] {
            let mut b = header(3, 0, 1);
            b.extend(1u64.to_le_bytes());
            b.push(b'a');
            b.extend(9u32.to_le_bytes());
            b.extend(4u32.to_le_bytes());
            b.extend(count.to_le_bytes());
            b.extend([0u8; 16]);
            assert!(err(&b).contains("cannot fit"), "{count}");
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        let one = |ty: u32, body: &[u8]| {
            let mut b = header(3, 0, 1);
            b.extend(1u64.to_le_bytes());
            b.push(b'k');
            b.extend(ty.to_le_bytes());
            b.extend(body);
            err(&b)
        };
        assert!(one(13, &[0; 8]).contains("unknown value type 13"));
        assert!(one(7, &[2]).contains("neither 0 nor 1"));
        assert!(one(4, &[0; 2]).contains("past the end"));
        let mut arr = 99u32.to_le_bytes().to_vec();
        arr.extend(1u64.to_le_bytes());
        assert!(one(9, &arr).contains("array of unknown value type 99"));
        // Arrays nested deeper than the limit.
        let mut deep = Vec::new();
        for _ in 0..MAX_ARRAY_DEPTH + 1 {
            deep.extend(9u32.to_le_bytes());
            deep.extend(1u64.to_le_bytes());
        }
        deep.extend(0u32.to_le_bytes());
        deep.extend(0u64.to_le_bytes());
        assert!(one(9, &deep).contains("nested more than"));
        // Duplicate keys.
        let b = serialize(&[kv("k", Value::U8(1)), kv("k", Value::U8(2))], &[], 32);
        assert!(err(&b).contains("'k' appears twice"));
    }

    #[test]
    fn malformed_tensor_entries_are_named() {
        let f32s = |n: usize| vec![0u8; 4 * n];
        let e = err(&serialize(&[], &[t("w", 0, &[1, 1, 1, 1, 1], f32s(1))], 32));
        assert!(
            e.contains("tensor 'w'") && e.contains("5 dimensions"),
            "{e}"
        );
        let e = err(&serialize(&[], &[t("w", 0, &[1 << 63], f32s(1))], 32));
        assert!(e.contains("2^63"), "{e}");
        let e = err(&serialize(
            &[],
            &[t("w", 0, &[1 << 32, 1 << 32, 1 << 32], f32s(1))],
            32,
        ));
        assert!(e.contains("64 bits"), "{e}");
        let e = err(&serialize(
            &[],
            &[t("w", 0, &[1 << 31, 1 << 31], f32s(1))],
            32,
        ));
        assert!(e.contains("2^64 bytes"), "{e}");
        let e = err(&serialize(&[], &[t("w", 99, &[4], f32s(1))], 32));
        assert!(
            e.contains("tensor 'w'") && e.contains("unknown dtype 'ggml type 99'"),
            "{e}"
        );
        let e = err(&serialize(&[], &[t("w", 16, &[256], vec![0; 66])], 32));
        assert!(e.contains("ggml type 16 (IQ2_XXS)"), "{e}");
        let e = err(&serialize(&[], &[t("w", 8, &[16, 2], vec![0; 34])], 32));
        assert!(
            e.contains("ne[0] = 16 is not a multiple of the Q8_0 block length 32"),
            "{e}"
        );
        let whole = serialize(&[], &[t("w", 0, &[8], f32s(8))], 32);
        let e = err(&whole[..whole.len() - 4]);
        assert!(
            e.contains("tensor 'w'") && e.contains("runs past the end of the file"),
            "{e}"
        );
        let e = err(&serialize(
            &[],
            &[t("w", 0, &[4], f32s(4)), t("w", 0, &[4], f32s(4))],
            32,
        ));
        assert!(e.contains("tensor 'w': appears twice"), "{e}");
        // A truncated tensor table names the field it stopped in.
        let full = serialize(&[], &[t("weight", 0, &[4], f32s(4))], 32);
        let e = err(&full[..24 + 8 + 6 + 4 + 8 + 3]);
        assert!(e.contains("type of tensor 'weight'"), "{e}");
    }

    /// Rewrites the offset field of tensor `i` (in table order) of a file from `serialize`.
    fn set_offset(bytes: &mut [u8], names: &[(&str, usize)], i: usize, offset: u64) {
        let mut pos = 24usize;
        for (k, (name, dims)) in names.iter().enumerate() {
            pos += 8 + name.len() + 4 + 8 * dims + 4;
            if k == i {
                bytes[pos..pos + 8].copy_from_slice(&offset.to_le_bytes());
                return;
            }
            pos += 8;
        }
    }

    #[test]
    fn misaligned_out_of_file_and_overlapping_offsets_are_refused() {
        let base = serialize(
            &[],
            &[t("a", 0, &[16], vec![0; 64]), t("b", 0, &[8], vec![0; 32])],
            32,
        );
        let names = [("a", 1), ("b", 1)];
        let mut b = base.clone();
        set_offset(&mut b, &names, 1, 4);
        assert!(err(&b).contains("offset 4 is not a multiple of the alignment 32"));
        let mut b = base.clone();
        set_offset(&mut b, &names, 1, 32);
        let e = err(&b);
        assert!(
            e.contains("tensor 'b'") && e.contains("overlaps tensor 'a'"),
            "{e}"
        );
        let mut b = base.clone();
        set_offset(&mut b, &names, 0, 1 << 40);
        assert!(err(&b).contains("runs past the end of the file"));
        let mut b = base;
        set_offset(&mut b, &names, 0, u64::MAX - 31);
        assert!(err(&b).contains("runs past the end of the file"));
    }

    #[test]
    fn llama_q_and_k_rows_are_marked_with_their_head_counts() {
        let md = vec![
            kv("general.architecture", Value::Str("llama".into())),
            kv("llama.attention.head_count", Value::U32(4)),
            kv("llama.attention.head_count_kv", Value::U32(2)),
        ];
        let tensors = [
            t("blk.0.attn_q.weight", 0, &[8, 16], vec![0; 512]),
            t("blk.0.attn_k.weight", 0, &[8, 8], vec![0; 256]),
            t("blk.0.attn_k.bias", 0, &[8], vec![0; 32]),
            t("blk.0.attn_v.weight", 0, &[8, 8], vec![0; 256]),
        ];
        let h = parse(Path::new("x"), &serialize(&md, &tensors, 32)).unwrap();
        let order = |n: &str| h.tensors.iter().find(|t| t.name == n).unwrap().rows;
        assert_eq!(
            order("blk.0.attn_q.weight"),
            RowOrder::HeadPairs { heads: 4 }
        );
        assert_eq!(
            order("blk.0.attn_k.weight"),
            RowOrder::HeadPairs { heads: 2 }
        );
        assert_eq!(order("blk.0.attn_k.bias"), RowOrder::HeadPairs { heads: 2 });
        assert_eq!(order("blk.0.attn_v.weight"), RowOrder::Plain);
        // Another architecture keeps its rows as stored.
        let mut other = md.clone();
        other[0] = kv("general.architecture", Value::Str("gpt2".into()));
        let h = parse(Path::new("x"), &serialize(&other, &tensors, 32)).unwrap();
        assert!(h.tensors.iter().all(|t| t.rows == RowOrder::Plain));
        // Per-layer head counts, and counts that do not divide the rows.
        let mut per_layer = md.clone();
        per_layer[1] = kv(
            "llama.attention.head_count",
            Value::Array(Array::U32(vec![2])),
        );
        let h = parse(Path::new("x"), &serialize(&per_layer, &tensors[..1], 32)).unwrap();
        assert_eq!(h.tensors[0].rows, RowOrder::HeadPairs { heads: 2 });
        let mut odd = md.clone();
        odd[1] = kv("llama.attention.head_count", Value::U32(3));
        let e = err(&serialize(&odd, &tensors[..1], 32));
        assert!(e.contains("16 rows cannot be 3 heads"), "{e}");
        let e = err(&serialize(&md[..1], &tensors[..1], 32));
        assert!(e.contains("head_count is missing"), "{e}");
        odd[1] = kv("llama.attention.head_count", Value::U64(1 << 63));
        let e = err(&serialize(&odd, &tensors[..1], 32));
        assert!(e.contains("cannot be 9223372036854775808 heads"), "{e}");
    }

    proptest::proptest! {
        /// Random edits of a valid file (bytes set, inserted or cut anywhere) never panic, and both
        /// readers agree on whether the file is valid.
        #[test]
        fn random_edits_never_panic(
            edits in proptest::collection::vec((0usize..400, proptest::collection::vec(proptest::num::u8::ANY, 1..9), 0u8..3), 1..5)
        ) {
            let mut b = small();
            for (at, bytes, kind) in edits {
                let at = at.min(b.len());
                match kind {
                    0 => {
                        let end = (at + bytes.len()).min(b.len());
                        b[at..end].copy_from_slice(&bytes[..end - at]);
                    }
                    1 => { b.splice(at..at, bytes); }
                    _ => b.truncate(at),
                }
            }
            let (light, all) = (parse(Path::new("x"), &b), parse_all(Path::new("x"), &b));
            proptest::prop_assert_eq!(light.is_ok(), all.is_ok());
        }
    }

    #[test]
    fn no_input_panics() {
        // Every prefix and many single-byte corruptions of a valid file give a result, not a panic.
        let good = small();
        for n in 0..good.len() {
            let _ = parse(Path::new("x"), &good[..n]);
            let _ = parse_all(Path::new("x"), &good[..n]);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let (light, all) = (parse(Path::new("x"), &b), parse_all(Path::new("x"), &b));
                assert_eq!(light.is_ok(), all.is_ok(), "byte {i} = {v}");
            }
        }
    }
}
