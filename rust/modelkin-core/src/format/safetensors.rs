//! The safetensors format: an 8-byte little-endian header length, a JSON header, then the data.
//!
//! Validation follows the format's rules and adds the checks a hostile file needs: a sane header
//! length, a JSON object without duplicate keys, known dtypes, checked `shape × dtype` arithmetic,
//! offsets inside the data section that do not overlap.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{first_overlap, Part, TensorInfo};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Largest header accepted; the reference implementation uses the same bound.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Most dimensions a tensor may have: numpy's limit (`NPY_MAXDIMS` since numpy 2.0; PyTorch's
/// tensors are capped lower still), so no tensor a framework can hold is refused. The reference
/// safetensors crate sets no bound of its own.
pub const MAX_DIMS: usize = 64;

/// A parsed and validated safetensors header.
#[derive(Debug, Clone)]
pub struct Header {
    /// Byte length of the JSON header.
    pub header_len: u64,
    /// Tensors in file order (by offset).
    pub tensors: Vec<TensorInfo>,
    /// The free-form `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

/// A JSON object read as ordered key/value pairs, so that duplicate keys can be refused
/// (a plain map keeps the last one silently).
struct Entries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut out: Vec<(String, Value)> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("duplicate key '{k}'")));
                    }
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// Parses and validates the header of a safetensors file whose full contents are `bytes`.
///
/// `path` is used for messages only.
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header> {
    let file_len = bytes.len() as u64;
    if bytes.starts_with(super::gguf::MAGIC) {
        // Reached for a file among others (a folder's shards, an index): GGUF files are read on
        // their own.
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            reason: "this is a GGUF file, not a safetensors file; open the GGUF file on its own"
                .into(),
        });
    }
    if file_len < 8 {
        return Err(match super::sniff_unsupported(bytes) {
            Some(what) => Error::UnsupportedFormat {
                path: path.to_path_buf(),
                reason: what.to_string(),
            },
            None => Error::header(
                path,
                format!("file is {file_len} bytes, too short to hold the 8-byte header length"),
            ),
        });
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[..8]);
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > file_len - 8 || header_len > MAX_HEADER_LEN {
        if let Some(what) = super::sniff_unsupported(bytes) {
            return Err(Error::UnsupportedFormat {
                path: path.to_path_buf(),
                reason: what.to_string(),
            });
        }
    }
    // The length is shown only when the JSON header seems to follow it: otherwise the "length" is
    // the first 8 bytes of some other file (a text file's first 8 characters, as a number), and a
    // message must never carry a file's bytes.
    let shown = if bytes.get(8) == Some(&b'{') {
        format!("header length {header_len}")
    } else {
        "the header length (the first 8 bytes)".to_string()
    };
    if header_len > MAX_HEADER_LEN {
        return Err(Error::header(
            path,
            format!("{shown} exceeds the {MAX_HEADER_LEN}-byte limit"),
        ));
    }
    if header_len > file_len - 8 {
        return Err(Error::header(
            path,
            format!("{shown} runs past the end of the file ({file_len} bytes; truncated?)"),
        ));
    }
    let data_start = 8 + header_len;
    let data_len = file_len - data_start;
    let json = &bytes[8..data_start as usize];
    let text = std::str::from_utf8(json)
        .map_err(|e| Error::header(path, format!("header is not UTF-8: {e}")))?;
    // The reference writer pads the header with trailing spaces.
    let Entries(entries) = serde_json::from_str::<Entries>(text.trim_end_matches(' '))
        .map_err(|e| Error::header(path, format!("header is not a valid JSON object: {e}")))?;

    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if name == "__metadata__" {
            let Value::Object(map) = value else {
                return Err(Error::header(path, "__metadata__ is not a JSON object"));
            };
            for (k, v) in map {
                let Value::String(s) = v else {
                    return Err(Error::header(
                        path,
                        format!("__metadata__ value of '{k}' is not a string"),
                    ));
                };
                metadata.insert(k, s);
            }
            continue;
        }
        tensors.push(parse_entry(path, &name, &value, data_start, data_len)?);
    }

    if let Some((prev, t)) = first_overlap(&mut tensors) {
        return Err(Error::tensor(
            path,
            &t.name,
            format!("data overlaps tensor '{}'", prev.name),
        ));
    }
    covers_the_data(path, &tensors, data_start, data_len)?;
    Ok(Header {
        header_len,
        tensors,
        metadata,
    })
}

/// The reference reader's rule (`Metadata::validate` and `read_metadata` of huggingface/safetensors):
/// taken in order of their offsets (`tensors` is sorted so), the tensors tile the data section
/// exactly — each begins where the one before ends, the first at 0, the last ends at the end of the
/// file. Bytes that no tensor covers (a hole, trailing bytes) could hide anything, and the
/// reference refuses such a file, so modelkin does too.
fn covers_the_data(
    path: &Path,
    tensors: &[TensorInfo],
    data_start: u64,
    data_len: u64,
) -> Result<()> {
    let mut end = 0u64;
    for t in tensors {
        let begin = t.offset - data_start;
        if begin != end {
            return Err(Error::tensor(
                path,
                &t.name,
                if begin > end {
                    format!(
                        "data begin at byte {begin} of the data section, but the tensors before \
                         end at {end}: {} bytes belong to no tensor",
                        begin - end
                    )
                } else {
                    format!(
                        "data begin at byte {begin} of the data section, inside the tensors \
                         before (which end at {end})"
                    )
                },
            ));
        }
        end = begin + t.nbytes;
    }
    if end != data_len {
        return Err(Error::header(
            path,
            format!(
                "the data section holds {data_len} bytes but the tensors cover {end}: {} \
                 trailing bytes belong to no tensor",
                data_len - end
            ),
        ));
    }
    Ok(())
}

fn parse_entry(
    path: &Path,
    name: &str,
    value: &Value,
    data_start: u64,
    data_len: u64,
) -> Result<TensorInfo> {
    let bad = |reason: String| Error::tensor(path, name, reason);
    let Value::Object(obj) = value else {
        return Err(bad("entry is not a JSON object".into()));
    };
    let dtype_name = match obj.get("dtype") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(bad("dtype is not a string".into())),
        None => return Err(bad("no dtype".into())),
    };
    let dtype = DType::parse(dtype_name).ok_or_else(|| Error::UnknownDtype {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        dtype: dtype_name.to_string(),
    })?;
    let shape = match obj.get("shape") {
        Some(Value::Array(dims)) if dims.len() > MAX_DIMS => {
            return Err(bad(format!(
                "shape has {} dimensions; at most {MAX_DIMS} are accepted",
                dims.len()
            )))
        }
        Some(Value::Array(dims)) => dims
            .iter()
            .map(|d| {
                d.as_u64()
                    .ok_or_else(|| bad(format!("shape entry {d} is not a non-negative integer")))
            })
            .collect::<Result<Vec<u64>>>()?,
        Some(_) => return Err(bad("shape is not an array".into())),
        None => return Err(bad("no shape".into())),
    };
    let offsets = match obj.get("data_offsets") {
        Some(Value::Array(o)) if o.len() == 2 => {
            let get = |v: &Value| {
                v.as_u64().ok_or_else(|| {
                    bad(format!(
                        "data_offsets entry {v} is not a non-negative integer"
                    ))
                })
            };
            (get(&o[0])?, get(&o[1])?)
        }
        Some(_) => return Err(bad("data_offsets is not a [begin, end] pair".into())),
        None => return Err(bad("no data_offsets".into())),
    };
    let (begin, end) = offsets;
    if begin > end {
        return Err(bad(format!(
            "data_offsets [{begin}, {end}] end before they begin"
        )));
    }
    let nbytes = super::checked_nbytes(&shape, dtype).map_err(bad)?;
    if end > data_len {
        return Err(bad(format!(
            "data_offsets [{begin}, {end}] run past the end of the data section ({data_len} bytes; truncated file?)"
        )));
    }
    if end - begin != nbytes {
        return Err(bad(format!(
            "data_offsets [{begin}, {end}] span {} bytes but shape {shape:?} of {dtype} needs {nbytes}",
            end - begin
        )));
    }
    Ok(TensorInfo {
        name: name.to_string(),
        dtype,
        shape,
        offset: data_start + begin,
        nbytes,
        rows: super::RowOrder::Plain,
    })
}

/// A safetensors file as a checkpoint part: its tensors and its header's `__metadata__`.
pub fn read(path: &Path, bytes: &[u8]) -> Result<Part> {
    let header = parse_header(path, bytes)?;
    Ok(Part {
        metadata: header.metadata,
        ..Part::new("safetensors", header.tensors)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::safetensors::serialize;

    /// A file of header `json` and `data` zero bytes.
    fn file(json: &[u8], data: usize) -> Vec<u8> {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json);
        out.extend(std::iter::repeat_n(0u8, data));
        out
    }

    fn one(dtype: &str, shape: &str, offsets: &str, data: usize) -> Vec<u8> {
        let json =
            format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}}}"#);
        file(json.as_bytes(), data)
    }

    fn err(bytes: &[u8]) -> String {
        parse_header(Path::new("m.safetensors"), bytes)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn valid_header_parses() {
        let h = parse_header(Path::new("x"), &one("F32", "[2,3]", "[0,24]", 24)).unwrap();
        assert_eq!(h.tensors.len(), 1);
        assert_eq!(h.tensors[0].numel(), 6);
        assert_eq!(h.tensors[0].offset, 8 + h.header_len);
    }

    #[test]
    fn malformed_headers_are_named() {
        assert!(err(b"abc").contains("too short"));
        assert!(err(&u64::MAX.to_le_bytes()).contains("exceeds"));
        let mut b = 50u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        assert!(err(&b).contains("past the end of the file"));
        assert!(
            err(&one("F32", "[2,3]", "[0,24]", 10)).contains("past the end of the data section")
        );
        assert!(err(&one("Q4", "[2]", "[0,2]", 2)).contains("unknown dtype 'Q4'"));
        assert!(err(&one("F32", "[2,3]", "[0,20]", 24)).contains("needs 24"));
        assert!(err(&one("F32", "[4294967296,4294967296]", "[0,4]", 4)).contains("64 bits"));
        assert!(err(&one("F32", "[-1]", "[0,4]", 4)).contains("non-negative"));
        let dup = br#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
        let mut b = (dup.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(dup);
        b.push(0);
        assert!(err(&b).contains("duplicate key"));
    }

    #[test]
    fn another_files_first_bytes_are_never_shown() {
        // A text file read as safetensors: its first 8 characters as a number would be the
        // "header length"; the message must not carry them.
        let text = b"TOPSECRET password=hunter2\n";
        let msg = err(text);
        let leaked = u64::from_le_bytes(text[..8].try_into().unwrap()).to_string();
        assert!(
            !msg.contains(&leaked) && msg.contains("first 8 bytes"),
            "{msg}"
        );
        let mut b = 5u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"abc");
        assert!(!err(&b).contains('5'));
        let mut b = 50u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        assert!(err(&b).contains("header length 50 runs past the end of the file"));
    }

    #[test]
    fn bytes_no_tensor_covers_are_refused_as_the_reference_refuses_them() {
        let two = |a: &str, b: &str, data: usize| {
            let json = format!(
                r#"{{"a":{{"dtype":"U8","shape":[2],"data_offsets":{a}}},"b":{{"dtype":"U8","shape":[2],"data_offsets":{b}}}}}"#
            );
            file(json.as_bytes(), data)
        };
        assert!(parse_header(Path::new("x"), &two("[0,2]", "[2,4]", 4)).is_ok());
        assert!(err(&two("[0,2]", "[3,5]", 5)).contains("1 bytes belong to no tensor"));
        assert!(err(&two("[1,3]", "[3,5]", 5)).contains("tensor 'a': data begin at byte 1"));
        assert!(err(&two("[0,2]", "[2,4]", 7)).contains("3 trailing bytes belong to no tensor"));
        assert!(err(&one("F32", "[1]", "[0,4]", 5)).contains("trailing"));
        // An empty tensor must sit where the tensors before it end, as in the reference.
        let json = br#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"e":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}}"#;
        assert!(err(&file(json, 4)).contains("tensor 'e'"));
    }

    #[test]
    fn more_than_64_dimensions_are_refused() {
        let dims = |n: usize| format!("[{}]", vec!["1"; n].join(","));
        assert!(parse_header(Path::new("x"), &one("U8", &dims(64), "[0,1]", 1)).is_ok());
        assert!(err(&one("U8", &dims(65), "[0,1]", 1)).contains("65 dimensions; at most 64"));
    }

    #[test]
    fn overlapping_tensors_are_refused() {
        let json = br#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#;
        assert!(err(&file(json, 6)).contains("overlaps"));
    }

    #[test]
    fn an_empty_tensor_does_not_hide_an_overlap() {
        let json = br#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"e":{"dtype":"U8","shape":[0],"data_offsets":[2,2]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#;
        assert!(err(&file(json, 8)).contains("overlaps tensor 'a'"));
    }

    #[test]
    fn serialize_round_trips() {
        let t = vec![
            ("w".to_string(), DType::F32, vec![2], vec![0u8; 8]),
            ("e".to_string(), DType::U8, vec![0], vec![]),
        ];
        let bytes = serialize(&t, &BTreeMap::new());
        let h = parse_header(Path::new("x"), &bytes).unwrap();
        assert_eq!(h.tensors.len(), 2);
    }
}
