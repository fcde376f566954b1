//! NumPy's `.npy` format: a magic string, a version, a header length, a Python-literal header
//! (`{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`), then the raw array.
//!
//! Only what a tensor needs is accepted: little-endian (or byte-sized) numeric dtypes in C order.
//! Object arrays (which hold pickles) are refused, never loaded.

use std::path::Path;

use super::{Part, TensorInfo};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The magic string every `.npy` file starts with.
pub const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses the header of a `.npy` file whose contents are `bytes`; the one tensor is called `name`.
pub fn parse(path: &Path, name: &str, bytes: &[u8]) -> Result<TensorInfo> {
    parse_in(path, None, name, bytes)
}

/// One `.npy` file as a one-tensor checkpoint part: the tensor is named after the file.
pub fn read(path: &Path, bytes: &[u8]) -> Result<Part> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Part::new("npy", vec![parse(path, &name, bytes)?]))
}

/// Parses a `.npy` header; `member` names the `.npz` member it was read from (for messages), and
/// the returned offset is relative to `bytes`.
pub(crate) fn parse_in(
    path: &Path,
    member: Option<&str>,
    name: &str,
    bytes: &[u8],
) -> Result<TensorInfo> {
    let within = |reason: String| match member {
        Some(m) => format!("member '{m}': {reason}"),
        None => reason,
    };
    let format = if member.is_some() {
        "NumPy .npz archive"
    } else {
        ".npy file"
    };
    let bad = |reason: String| Error::file(path, format, within(reason));
    if !bytes.starts_with(MAGIC) || bytes.len() < 10 {
        return Err(bad("not a NumPy .npy file (bad magic or too short)".into()));
    }
    let major = bytes[6];
    let (len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated .npy header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12usize,
            )
        }
        v => return Err(bad(format!(".npy format version {v} is not supported"))),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            bad(format!(
                ".npy header length {len} runs past the end of the file"
            ))
        })?;
    let header = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| bad(".npy header is not text".into()))?;
    let descr =
        field(header, "descr").ok_or_else(|| bad("no 'descr' in the .npy header".into()))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let dtype = dtype_of(descr).ok_or_else(|| {
        Error::unsupported(
            path,
            within(if descr.contains('O') {
                "this .npy holds Python objects (a pickle); modelkin never unpickles model files"
                    .into()
            } else if descr.starts_with('>') {
                format!("big-endian dtype '{descr}'; save the array little-endian")
            } else {
                format!("dtype '{descr}' is not one modelkin reads")
            }),
        )
    })?;
    let fortran = field(header, "fortran_order")
        .ok_or_else(|| bad("no 'fortran_order' in the .npy header".into()))?;
    if fortran.trim() != "False" {
        return Err(Error::unsupported(
            path,
            within("Fortran-ordered array; save it with numpy.ascontiguousarray".into()),
        ));
    }
    let shape_text =
        field(header, "shape").ok_or_else(|| bad("no 'shape' in the .npy header".into()))?;
    let shape = shape_text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<u64>()
                .map_err(|_| bad(format!("bad shape entry '{s}'")))
        })
        .collect::<Result<Vec<u64>>>()?;
    let nbytes = super::checked_nbytes(&shape, dtype).map_err(bad)?;
    let available = (bytes.len() - end) as u64;
    if nbytes > available {
        return Err(Error::tensor(
            path,
            name,
            format!("shape {shape:?} of {dtype} needs {nbytes} bytes but the file holds {available} (truncated?)"),
        ));
    }
    Ok(TensorInfo {
        name: name.to_string(),
        dtype,
        shape,
        offset: end as u64,
        nbytes,
        rows: super::RowOrder::Plain,
    })
}

/// The text of `key`'s value in a Python dict literal (up to the next top-level comma or brace).
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

fn dtype_of(descr: &str) -> Option<DType> {
    Some(match descr {
        "<f8" => DType::F64,
        "<f4" => DType::F32,
        "<f2" => DType::F16,
        "<i8" => DType::I64,
        "<i4" => DType::I32,
        "<i2" => DType::I16,
        "|i1" | "<i1" => DType::I8,
        "<u8" => DType::U64,
        "<u4" => DType::U32,
        "<u2" => DType::U16,
        "|u1" | "<u1" => DType::U8,
        "|b1" => DType::BOOL,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn a_c_ordered_float_array_is_read() {
        let b = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
            &[0; 24],
        );
        let t = parse(Path::new("x.npy"), "x", &b).unwrap();
        assert_eq!(
            (t.dtype, t.shape.clone(), t.nbytes),
            (DType::F32, vec![2, 3], 24)
        );
        let s = npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
            &[0; 8],
        );
        assert_eq!(
            parse(Path::new("s.npy"), "s", &s).unwrap().shape,
            Vec::<u64>::new()
        );
    }

    #[test]
    fn objects_fortran_order_big_endian_and_truncation_are_refused() {
        let msg = |h: &str, d: &[u8]| {
            parse(Path::new("m.npy"), "m", &npy(h, d))
                .unwrap_err()
                .to_string()
        };
        assert!(msg(
            "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8]
        )
        .contains("pickle"));
        assert!(msg(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
            &[0; 4]
        )
        .contains("Fortran"));
        assert!(msg(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 4]
        )
        .contains("big-endian"));
        assert!(msg(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (9,), }",
            &[0; 4]
        )
        .contains("truncated"));
        assert!(msg(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
            &[0; 4]
        )
        .contains("shape"));
    }
}
