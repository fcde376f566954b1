//! PyTorch checkpoints as `torch.save` writes them since PyTorch 1.6: a zip archive whose entries
//! sit under one folder named after the file (`archive/` for file objects): `data.pkl` (the pickled
//! object), `data/<key>` (the bytes of one storage each, stored uncompressed), `byteorder`,
//! `version` and a few other small records.
//!
//! The pickle is read by [`super::pickle`], which never executes it; each tensor it describes
//! becomes a [`TensorInfo`] over its storage's bytes in the mapped file. Only row-major contiguous
//! views are read (zero-copy, as every tensor); a strided view (a transposed tensor saved without
//! `.contiguous()`) is refused, never misread. Views of one storage at different offsets read their
//! own slice of it.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use super::pickle::{self, PickleError, MAX_PICKLE_BYTES};
use super::zip::Archive;
use super::{Part, RowOrder, TensorInfo};
use crate::error::{Error, Result};

/// File name extensions of PyTorch checkpoints.
pub const EXTENSIONS: [&str; 3] = ["bin", "pt", "pth"];

const FORMAT: &str = "PyTorch checkpoint";

/// The folder of the archive's `data.pkl` (`archive`, or the stem of the file name it was saved
/// to) when the archive is a PyTorch checkpoint: some entry is `<folder>/data.pkl`.
pub fn is_torch(archive: &Archive) -> bool {
    archive
        .entries
        .iter()
        .any(|e| pickle_folder(&e.name).is_some())
}

fn pickle_folder(name: &str) -> Option<&str> {
    name.strip_suffix("/data.pkl").filter(|f| !f.contains('/'))
}

/// Reads the tensors of the PyTorch checkpoint `archive` whose file contents are `bytes`.
pub fn parse(path: &Path, bytes: &[u8], archive: &Archive) -> Result<Vec<TensorInfo>> {
    let bad = |reason: String| Error::file(path, FORMAT, reason);
    let folders: Vec<&str> = archive
        .entries
        .iter()
        .filter_map(|e| pickle_folder(&e.name))
        .collect();
    let folder = match folders[..] {
        [one] => one,
        [] => return Err(bad("no <name>/data.pkl entry".into())),
        _ => {
            return Err(bad(format!(
                "{} data.pkl entries ({}); the archive is ambiguous",
                folders.len(),
                folders.join(", ")
            )))
        }
    };
    let stored = |name: &str| -> Result<Option<&[u8]>> {
        let Some(e) = archive.get(name) else {
            return Ok(None);
        };
        if let Some(why) = e.unreadable() {
            return Err(Error::unsupported(
                path,
                format!(
                    "entry '{name}' is {why}; torch.save stores every entry uncompressed and \
                     modelkin reads them in place (re-save with torch.save, or convert to \
                     safetensors)"
                ),
            ));
        }
        Ok(Some(e.data(bytes)))
    };
    if let Some(order) = stored(&format!("{folder}/byteorder"))? {
        if order.trim_ascii() != b"little" {
            return Err(Error::unsupported(
                path,
                format!(
                    "the checkpoint was saved with byte order '{}'; modelkin reads little-endian \
                     data only",
                    String::from_utf8_lossy(order).trim()
                ),
            ));
        }
    }
    let pkl_name = format!("{folder}/data.pkl");
    let pkl = stored(&pkl_name)?.unwrap_or_default();
    if pkl.len() as u64 > MAX_PICKLE_BYTES {
        return Err(bad(format!(
            "{pkl_name} is {} bytes, more than the {MAX_PICKLE_BYTES}-byte limit",
            pkl.len()
        )));
    }
    let loaded = pickle::load(pkl).map_err(|e: PickleError| {
        let reason = format!("{pkl_name}, {e}");
        if e.refused {
            Error::unsupported(path, reason)
        } else {
            bad(reason)
        }
    })?;

    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| folder.to_string());
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(loaded.tensors.len());
    for (name, t) in loaded.tensors {
        let name = if name.is_empty() { stem.clone() } else { name };
        if !seen.insert(name.clone()) {
            return Err(bad(format!(
                "two tensors are named '{name}' (nested keys are joined with '.')"
            )));
        }
        let storage = &loaded.storages[t.storage];
        let key = &storage.key;
        let entry_name = format!("{folder}/data/{key}");
        let Some(entry) = archive.get(&entry_name) else {
            return Err(Error::tensor(
                path,
                &name,
                format!("its storage '{key}' is not in the archive (no entry '{entry_name}')"),
            ));
        };
        if let Some(why) = entry.unreadable() {
            return Err(Error::unsupported(
                path,
                format!(
                    "tensor '{name}': storage entry '{entry_name}' is {why}; modelkin reads tensor \
                     data in place, as torch.save stores it (uncompressed)"
                ),
            ));
        }
        let declared = storage.nbytes().ok_or_else(|| {
            Error::tensor(path, &name, format!("storage '{key}' has no readable size"))
        })?;
        if declared != entry.size {
            return Err(Error::tensor(
                path,
                &name,
                format!(
                    "storage '{key}' is declared as {declared} bytes but its entry holds {} \
                     (truncated or altered archive?)",
                    entry.size
                ),
            ));
        }
        let tensor_err = |reason: String| Error::tensor(path, &name, reason);
        let nbytes = super::checked_nbytes(&t.size, t.dtype).map_err(tensor_err)?;
        let numel = nbytes / t.dtype.size() as u64;
        if numel > 0 && !is_contiguous(&t.size, &t.stride) {
            return Err(Error::unsupported(
                path,
                format!(
                    "tensor '{name}' is a strided view of storage '{key}' (size {:?}, stride {:?}), \
                     not a row-major contiguous tensor; modelkin reads tensors in place and never \
                     guesses a layout: save it with .contiguous() (or as safetensors)",
                    t.size, t.stride
                ),
            ));
        }
        let start = t.offset.checked_mul(t.dtype.size() as u64);
        let end = start.and_then(|s| s.checked_add(nbytes));
        if end.is_none_or(|e| e > declared) {
            return Err(Error::tensor(
                path,
                &name,
                format!(
                    "{} elements of {} from element {} run past the end of storage '{key}' \
                     ({declared} bytes)",
                    numel, t.dtype, t.offset
                ),
            ));
        }
        out.push(TensorInfo {
            name,
            dtype: t.dtype,
            shape: t.size,
            offset: entry.data_offset + start.unwrap_or(0),
            nbytes,
            rows: super::RowOrder::Plain,
        });
    }
    Ok(out)
}

/// Whether `stride` is the row-major layout of `size` (dimensions of size 1 may have any stride,
/// as in `torch.Tensor.is_contiguous`).
fn is_contiguous(size: &[u64], stride: &[u64]) -> bool {
    let mut expect = 1u64;
    for (&d, &s) in size.iter().zip(stride).rev() {
        if d != 1 && s != expect {
            return false;
        }
        expect = expect.saturating_mul(d);
    }
    true
}

/// A PyTorch zip checkpoint as a checkpoint part: its tensors, with the Q/K rows of Meta's
/// reference checkpoints read in the Hugging Face order when `params.json` is beside the file.
pub fn read(path: &Path, bytes: &[u8], archive: &Archive) -> Result<Part> {
    let mut infos = parse(path, bytes, archive)?;
    meta_row_orders(path, &mut infos)?;
    Ok(Part::new("pytorch", infos))
}

/// Name of the hyper-parameter file beside Meta's reference Llama checkpoints.
pub const META_PARAMS: &str = "params.json";

/// Meta's reference Llama checkpoints (`consolidated.00.pth` beside `params.json`) store the rows of
/// `layers.N.attention.wq` / `wk` in the rotary layout that Hugging Face's converter permutes away:
/// the layout llama.cpp writes too. When `params.json` is beside the file, those tensors are read
/// back in the Hugging Face order ([`RowOrder::HeadPairs`]), so a Meta checkpoint compares cleanly
/// with its Hugging Face conversion.
fn meta_row_orders(path: &Path, infos: &mut [TensorInfo]) -> Result<()> {
    let qk = |name: &str| -> Option<bool> {
        let rest = name.strip_prefix("layers.")?;
        let (layer, rest) = rest.split_once('.')?;
        layer.parse::<u64>().ok()?;
        match rest {
            "attention.wq.weight" | "attention.wq.bias" => Some(true),
            "attention.wk.weight" | "attention.wk.bias" => Some(false),
            _ => None,
        }
    };
    if !infos.iter().any(|t| qk(&t.name).is_some()) {
        return Ok(());
    }
    let params = path.parent().unwrap_or(Path::new(".")).join(META_PARAMS);
    if std::fs::metadata(&params).is_err() {
        return Ok(()); // no params.json: the names alone do not prove Meta's layout
    }
    crate::fs::check_inside(path.parent().unwrap_or(Path::new(".")), &params)?;
    let text = crate::fs::read_small(&params, 1 << 20, |_| {
        Error::file(&params, "Meta params.json", "larger than 1 MiB")
    })?;
    let json: Value = serde_json::from_slice(&text)
        .map_err(|e| Error::file(&params, "Meta params.json", format!("not valid JSON: {e}")))?;
    let count = |key: &str| json.get(key).and_then(Value::as_u64).filter(|&h| h > 0);
    let Some(heads) = count("n_heads") else {
        return Err(Error::file(
            &params,
            "Meta params.json",
            "no positive integer \"n_heads\"",
        ));
    };
    let kv_heads = count("n_kv_heads").unwrap_or(heads);
    for t in infos.iter_mut() {
        let Some(is_q) = qk(&t.name) else { continue };
        let h = if is_q { heads } else { kv_heads };
        let rows = t.shape.first().copied().unwrap_or(0);
        if !h.checked_mul(2).is_some_and(|g| rows.is_multiple_of(g)) {
            return Err(Error::tensor(
                path,
                &t.name,
                format!(
                    "{rows} rows cannot be {h} heads of two halves (n_heads / n_kv_heads in {})",
                    params.display()
                ),
            ));
        }
        t.rows = RowOrder::HeadPairs { heads: h };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::testing::pickle::{state_dict, tensor};
    use crate::testing::zip::{archive, stored, Item};

    fn read(bytes: &[u8]) -> Result<Vec<TensorInfo>> {
        let path = Path::new("model.bin");
        let a = Archive::read(path, bytes)?;
        parse(path, bytes, &a)
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn tensors_are_read_in_place_including_shared_storages() {
        let pkl = state_dict(&[
            ("w", tensor("FloatStorage", "0", 6, 0, &[2, 3], &[3, 1])),
            ("head", tensor("FloatStorage", "0", 6, 2, &[2, 2], &[2, 1])),
            ("row", tensor("FloatStorage", "0", 6, 3, &[1, 3], &[99, 1])),
            ("empty", tensor("FloatStorage", "0", 6, 6, &[0, 3], &[3, 1])),
            ("s", tensor("HalfStorage", "1", 1, 0, &[], &[])),
        ]);
        let data = f32s(&[0., 1., 2., 3., 4., 5.]);
        let bytes = archive(
            &[
                Item {
                    name: "m/data.pkl",
                    data: &pkl,
                    method: 0,
                    pad: 0,
                },
                Item {
                    name: "m/byteorder",
                    data: b"little",
                    method: 0,
                    pad: 0,
                },
                Item {
                    name: "m/data/0",
                    data: &data,
                    method: 0,
                    pad: 37,
                },
                Item {
                    name: "m/data/1",
                    data: &[0, 0x3c],
                    method: 0,
                    pad: 0,
                },
            ],
            false,
        );
        let t = read(&bytes).unwrap();
        let get = |n: &str| t.iter().find(|t| t.name == n).unwrap();
        let slice = |n: &str| {
            let i = get(n);
            &bytes[i.offset as usize..(i.offset + i.nbytes) as usize]
        };
        assert_eq!(slice("w"), &data[..]);
        assert_eq!(slice("head"), &data[8..24]);
        assert_eq!(slice("row"), &data[12..24]);
        assert_eq!(get("empty").nbytes, 0);
        assert_eq!((get("s").dtype, slice("s")), (DType::F16, &[0, 0x3c][..]));
    }

    #[test]
    fn a_bare_tensor_is_named_after_the_file() {
        let mut pkl = b"\x80\x02".to_vec();
        pkl.extend(tensor("FloatStorage", "0", 1, 0, &[1], &[1]));
        pkl.push(b'.');
        let bytes = stored(&[("archive/data.pkl", &pkl), ("archive/data/0", &[0; 4])]);
        assert_eq!(read(&bytes).unwrap()[0].name, "model");
    }

    #[test]
    fn strided_views_are_refused_not_misread() {
        let pkl = state_dict(&[("t", tensor("FloatStorage", "0", 6, 0, &[3, 2], &[1, 3]))]);
        let bytes = stored(&[("a/data.pkl", &pkl), ("a/data/0", &[0; 24])]);
        let msg = read(&bytes).unwrap_err().to_string();
        assert!(
            msg.contains("tensor 't' is a strided view") && msg.contains("[1, 3]"),
            "{msg}"
        );
    }

    #[test]
    fn views_and_storages_must_fit() {
        let past = state_dict(&[("t", tensor("FloatStorage", "0", 6, 4, &[3], &[1]))]);
        let msg = read(&stored(&[("a/data.pkl", &past), ("a/data/0", &[0; 24])])).unwrap_err();
        assert!(msg.to_string().contains("run past the end of storage '0'"));
        let short = state_dict(&[("t", tensor("FloatStorage", "0", 6, 0, &[6], &[1]))]);
        let msg = read(&stored(&[("a/data.pkl", &short), ("a/data/0", &[0; 20])])).unwrap_err();
        assert!(msg
            .to_string()
            .contains("declared as 24 bytes but its entry holds 20"));
        let missing = read(&stored(&[("a/data.pkl", &short)])).unwrap_err();
        assert!(missing.to_string().contains("no entry 'a/data/0'"));
    }

    #[test]
    fn compressed_entries_and_big_endian_archives_are_refused() {
        let pkl = state_dict(&[("t", tensor("FloatStorage", "0", 1, 0, &[1], &[1]))]);
        let compressed = archive(
            &[
                Item {
                    name: "a/data.pkl",
                    data: &pkl,
                    method: 0,
                    pad: 0,
                },
                Item {
                    name: "a/data/0",
                    data: &[0; 4],
                    method: 8,
                    pad: 0,
                },
            ],
            false,
        );
        let e = read(&compressed).unwrap_err();
        assert!(matches!(e, Error::UnsupportedFormat { .. }));
        assert!(e
            .to_string()
            .contains("'a/data/0' is compressed with deflate"));
        let pkl_deflated = archive(
            &[Item {
                name: "a/data.pkl",
                data: &pkl,
                method: 8,
                pad: 0,
            }],
            false,
        );
        assert!(read(&pkl_deflated)
            .unwrap_err()
            .to_string()
            .contains("'a/data.pkl' is compressed"));
        let big = stored(&[
            ("a/data.pkl", &pkl),
            ("a/byteorder", b"big"),
            ("a/data/0", &[0; 4]),
        ]);
        assert!(read(&big)
            .unwrap_err()
            .to_string()
            .contains("byte order 'big'"));
    }

    #[test]
    fn pickle_errors_name_the_entry_and_offset() {
        let evil = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
        let e = read(&stored(&[("a/data.pkl", evil)])).unwrap_err();
        assert!(matches!(e, Error::UnsupportedFormat { .. }));
        let msg = e.to_string();
        assert!(
            msg.starts_with("model.bin: a/data.pkl, pickle offset 2: global 'os.system'"),
            "{msg}"
        );
        let broken = read(&stored(&[("a/data.pkl", b"\x80\x02}s.")])).unwrap_err();
        assert!(matches!(broken, Error::InvalidFile { .. }));
    }

    #[test]
    fn ambiguous_or_colliding_names_are_refused() {
        let pkl = state_dict(&[("t", tensor("FloatStorage", "0", 1, 0, &[1], &[1]))]);
        let two = stored(&[
            ("a/data.pkl", &pkl),
            ("b/data.pkl", &pkl),
            ("a/data/0", &[0; 4]),
        ]);
        assert!(read(&two).unwrap_err().to_string().contains("ambiguous"));
        // {"a.b": t, "a": {"b": t}}
        let mut p = b"\x80\x02}(".to_vec();
        p.extend(crate::testing::pickle::s("a.b"));
        p.extend(tensor("FloatStorage", "0", 1, 0, &[1], &[1]));
        p.extend(crate::testing::pickle::s("a"));
        p.extend(b"}");
        p.extend(crate::testing::pickle::s("b"));
        p.extend(tensor("FloatStorage", "0", 1, 0, &[1], &[1]));
        p.extend(b"su.");
        let clash = stored(&[("a/data.pkl", &p), ("a/data/0", &[0; 4])]);
        assert!(read(&clash)
            .unwrap_err()
            .to_string()
            .contains("two tensors are named 'a.b'"));
    }

    #[test]
    fn contiguity_follows_torch() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(is_contiguous(&[1, 3], &[7, 1]));
        assert!(is_contiguous(&[], &[]));
        assert!(!is_contiguous(&[3, 2], &[1, 3]));
        assert!(!is_contiguous(&[4], &[2]));
    }
}
