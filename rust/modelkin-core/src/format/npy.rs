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
    let header = entries(header).map_err(bad)?;
    let descr =
        field(&header, "descr").ok_or_else(|| bad("no 'descr' in the .npy header".into()))?;
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
    let fortran = field(&header, "fortran_order")
        .ok_or_else(|| bad("no 'fortran_order' in the .npy header".into()))?;
    if fortran.trim() != "False" {
        return Err(Error::unsupported(
            path,
            within("Fortran-ordered array; save it with numpy.ascontiguousarray".into()),
        ));
    }
    let shape_text =
        field(&header, "shape").ok_or_else(|| bad("no 'shape' in the .npy header".into()))?;
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

/// The entries of a `.npy` header, a Python dict literal (`{'descr': '<f4', 'fortran_order': False,
/// 'shape': (3, 4), }`), as (key, value text) pairs, split at top-level commas (outside brackets and
/// quotes). numpy reads the header with `ast.literal_eval`, where a repeated key silently keeps the
/// last value, and then requires exactly the keys `descr`, `fortran_order` and `shape`: a header
/// with a key twice, or with any other key, is refused here, so that no file means one array to
/// modelkin and another to numpy.
fn entries(header: &str) -> std::result::Result<Vec<(&str, &str)>, String> {
    let body = header
        .trim_end_matches([' ', '\n', '\t', '\r', '\0'])
        .trim_start()
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or("the .npy header is not a dict literal")?;
    let mut items = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0usize);
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => return Err("escapes in the .npy header".into()),
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                items.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced brackets in the .npy header".into());
        }
    }
    if quote.is_some() || depth != 0 {
        return Err("unbalanced quotes or brackets in the .npy header".into());
    }
    items.push(&body[start..]);
    let mut out: Vec<(&str, &str)> = Vec::new();
    for item in items.into_iter().filter(|s| !s.trim().is_empty()) {
        let (key, value) = item
            .split_once(':')
            .ok_or("an entry of the .npy header is not key: value")?;
        let key = key.trim();
        let key = key
            .strip_prefix('\'')
            .and_then(|k| k.strip_suffix('\''))
            .or_else(|| key.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
            .ok_or("a key of the .npy header is not a quoted string")?;
        if !matches!(key, "descr" | "fortran_order" | "shape") {
            return Err(format!(
                "unexpected key '{key}' in the .npy header (numpy refuses it too)"
            ));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!(
                "the .npy header holds the key '{key}' twice (numpy would read the last, \
                 modelkin refuses the file)"
            ));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// The text of `key`'s value among a header's `entries`.
fn field<'a>(entries: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
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

    #[test]
    fn duplicate_and_unknown_keys_are_refused() {
        let msg = |h: &str| {
            parse(Path::new("m.npy"), "m", &npy(h, &[0; 8]))
                .unwrap_err()
                .to_string()
        };
        // numpy reads the last 'descr' (<i8); the first match would have said <f8.
        let dup = "{'descr': '<f8', 'descr': '<i8', 'fortran_order': False, 'shape': (1,), }";
        assert!(msg(dup).contains("the key 'descr' twice"), "{}", msg(dup));
        let dup = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (1,)}";
        assert!(msg(dup).contains("'shape' twice"));
        let extra = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}";
        assert!(msg(extra).contains("unexpected key 'x'"));
        // A key's name inside another value is not the key.
        let hidden = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
        assert!(parse(Path::new("m.npy"), "m", &npy(hidden, &[0; 8])).is_ok());
        assert!(msg("{'descr': \"<f4', 'shape': (2,)}").contains("unbalanced"));
        assert!(msg("no dict").contains("not a dict literal"));
    }
}
