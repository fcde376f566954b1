//! Checkpoints of several files: folders (which files of a folder make the checkpoint), indexes
//! of shards, and split GGUF files. Each file is read by [`super::mapped`]; what comes out is the
//! [`Parts`] that [`super::Checkpoint`] puts together.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path};

use serde_json::Value;

use super::mapped::{map_file, open_part, with_part, MappedFile};
use crate::error::{Error, Result};
use crate::format::{gguf, npy, torch, TensorInfo};
use crate::fs::{check_inside, read_small};

/// File name of the index that Hugging Face sharded checkpoints use.
pub const INDEX_NAME: &str = "model.safetensors.index.json";

/// File name of a Hugging Face PyTorch checkpoint in one file.
pub const PYTORCH_NAME: &str = "pytorch_model.bin";

/// The files of a checkpoint and the tensors read from each, in file order, before they are
/// put together (tensor names unique across files, sorted).
pub(crate) struct Parts {
    /// The checkpoint's format name (see [`super::Checkpoint::format`]).
    pub format: &'static str,
    /// The mapped files.
    pub files: Vec<MappedFile>,
    /// The tensors of each file.
    pub per_file: Vec<Vec<TensorInfo>>,
}

impl Parts {
    /// The parts (as a result, for the many ways out of [`open_dir`]).
    fn of(
        format: &'static str,
        files: Vec<MappedFile>,
        per_file: Vec<Vec<TensorInfo>>,
    ) -> Result<Parts> {
        Ok(Parts {
            format,
            files,
            per_file,
        })
    }
}

/// One file read on its own.
pub(crate) fn one_file(path: &Path) -> Result<Parts> {
    let (file, infos, format) = open_part(map_file(path)?)?;
    if format == "gguf" && gguf::split_of(&file.kv).is_some() {
        return open_gguf_split(file, infos);
    }
    Parts::of(format, vec![file], vec![infos])
}

/// A split GGUF (llama.cpp's `gguf-split`: `NAME-00001-of-00003.gguf`, …), opened from any of its
/// shards (`first` is that shard, already parsed): every shard must be present, numbered and
/// counted consistently; the first shard's metadata (the only one holding the architecture and
/// head counts) sets the Q/K row order of all of them.
pub(crate) fn open_gguf_split(first: MappedFile, infos: Vec<TensorInfo>) -> Result<Parts> {
    let (_, count) = gguf::split_of(&first.kv).unwrap_or((0, 1));
    let path = first.path.clone();
    if count > u16::MAX as u64 {
        // llama.cpp stores split.count as a u16; a larger claim is not a split GGUF.
        return Err(Error::unsupported(
            &path,
            format!("split.count = {count}: more shards than a split GGUF can have"),
        ));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = format!("-of-{count:05}.gguf");
    let prefix = name
        .strip_suffix(&suffix)
        .and_then(|s| s.rsplit_once('-'))
        .filter(|(_, no)| no.len() == 5 && no.bytes().all(|b| b.is_ascii_digit()))
        .map(|(p, _)| p.to_string())
        .ok_or_else(|| {
            Error::unsupported(
                &path,
                format!(
                    "a shard of a {count}-part split GGUF, not named PREFIX-NNNNN-of-{count:05}.gguf \
                     as llama.cpp names them: cannot find the other shards"
                ),
            )
        })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut parts = vec![(first, infos)];
    let mut files = Vec::new();
    let mut per_file = Vec::new();
    for k in 1..=count {
        let shard = dir.join(format!("{prefix}-{k:05}-of-{count:05}.gguf"));
        let (file, infos) = match parts.iter().position(|(f, _)| f.path == shard) {
            Some(i) => parts.swap_remove(i),
            None => {
                if !shard.is_file() {
                    return Err(Error::unsupported(
                        &path,
                        format!(
                            "shard {k} of {count} of this split GGUF is missing ({})",
                            shard.display()
                        ),
                    ));
                }
                let (file, infos, format) = open_part(map_inside(dir, &shard)?)?;
                if format != "gguf" {
                    return Err(Error::unsupported(
                        &shard,
                        format!("holds a {format} checkpoint, not a GGUF shard"),
                    ));
                }
                (file, infos)
            }
        };
        if gguf::split_of(&file.kv) != Some((k - 1, count)) {
            return Err(Error::unsupported(
                &file.path,
                format!("its split.no / split.count do not say shard {k} of {count}"),
            ));
        }
        files.push(file);
        per_file.push(infos);
    }
    let kv = files[0].kv.clone();
    for (file, infos) in files.iter().zip(per_file.iter_mut()).skip(1) {
        gguf::apply_row_orders(&file.path, &kv, infos)?;
    }
    Parts::of("gguf-split", files, per_file)
}

/// A file found in folder `dir`, mapped once it is known to lie inside it ([`check_inside`]).
fn map_inside(dir: &Path, path: &Path) -> Result<MappedFile> {
    check_inside(dir, path)?;
    map_file(path)
}

/// An index found in folder `dir`, read once it is known to lie inside it.
fn open_index_in(dir: &Path, index: &Path) -> Result<Parts> {
    check_inside(dir, index)?;
    open_index(index)
}

pub(crate) fn open_dir(dir: &Path) -> Result<Parts> {
    let index = dir.join(INDEX_NAME);
    if index.is_file() {
        return open_index_in(dir, &index);
    }
    let mut indexes = Vec::new();
    let mut shards = Vec::new();
    let mut arrays = Vec::new();
    let mut torch_indexes = Vec::new();
    let mut ggufs = Vec::new();
    let mut consolidated = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".safetensors.index.json") {
            indexes.push(p);
        } else if torch::EXTENSIONS
            .iter()
            .any(|ext| name.ends_with(&format!(".{ext}.index.json")))
        {
            torch_indexes.push(p);
        } else if name.ends_with(".safetensors") && p.is_file() {
            shards.push(p);
        } else if name.ends_with(".npy") && p.is_file() {
            arrays.push(p);
        } else if name.ends_with(".gguf") && p.is_file() {
            ggufs.push(p);
        } else if name.starts_with("consolidated.") && name.ends_with(".pth") && p.is_file() {
            consolidated.push(p);
        }
    }
    // Hugging Face repositories often hold the same weights as safetensors and as PyTorch files:
    // the safetensors are read and the rest ignored.
    if shards.is_empty() && indexes.is_empty() {
        match torch_indexes.len() {
            0 => {}
            1 => return open_index_in(dir, &torch_indexes[0]),
            n => {
                return Err(Error::UnsupportedFormat {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "the folder holds {n} PyTorch index files; name the one to use"
                    ),
                })
            }
        }
        let single = dir.join(PYTORCH_NAME);
        if single.is_file() {
            let (file, infos, format) = open_part(map_inside(dir, &single)?)?;
            return Parts::of(format, vec![file], vec![infos]);
        }
        match consolidated.len() {
            0 => {}
            1 => {
                let (file, infos, format) = open_part(map_inside(dir, &consolidated[0])?)?;
                return Parts::of(format, vec![file], vec![infos]);
            }
            n => {
                return Err(Error::UnsupportedFormat {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "the folder holds {n} consolidated.*.pth files: Meta's model-parallel \
                         shards, each holding a slice of every tensor; modelkin reads one-file \
                         checkpoints (convert to Hugging Face safetensors first)"
                    ),
                })
            }
        }
    }
    if shards.is_empty() && indexes.is_empty() && arrays.is_empty() && !ggufs.is_empty() {
        ggufs.sort();
        let (file, infos, format) = open_part(map_inside(dir, &ggufs[0])?)?;
        match gguf::split_of(&file.kv) {
            Some((_, count)) if count == ggufs.len() as u64 => {
                return open_gguf_split(file, infos);
            }
            None if ggufs.len() == 1 => return Parts::of(format, vec![file], vec![infos]),
            _ => {}
        }
        let names: Vec<String> = ggufs
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        return Err(Error::UnsupportedFormat {
            path: dir.to_path_buf(),
            reason: format!(
                "the folder holds {} GGUF files ({}) and no safetensors; name the one to use",
                ggufs.len(),
                names.join(", ")
            ),
        });
    }
    if shards.is_empty() && indexes.is_empty() && !arrays.is_empty() {
        // A folder of NumPy arrays: one tensor per file, named after it.
        arrays.sort();
        let mut files = Vec::new();
        let mut per_file = Vec::new();
        for p in arrays {
            let file = map_inside(dir, &p)?;
            let part = npy::read(&file.path, file.bytes())?;
            let (f, t, _) = with_part(file, part);
            files.push(f);
            per_file.push(t);
        }
        return Parts::of("npy", files, per_file);
    }
    if indexes.len() == 1 {
        return open_index_in(dir, &indexes[0]);
    }
    if indexes.len() > 1 {
        return Err(Error::UnsupportedFormat {
            path: dir.to_path_buf(),
            reason: format!(
                "the folder holds {} safetensors index files; name the one to use",
                indexes.len()
            ),
        });
    }
    if shards.is_empty() {
        return Err(Error::UnsupportedFormat {
            path: dir.to_path_buf(),
            reason: format!(
                "the folder holds no .safetensors file, {PYTORCH_NAME}, index, .gguf or .npy file"
            ),
        });
    }
    shards.sort();
    let mut files = Vec::new();
    let mut per_file = Vec::new();
    for p in shards {
        let (f, t, format) = open_part(map_inside(dir, &p)?)?;
        if format != "safetensors" {
            return Err(Error::UnsupportedFormat {
                path: p,
                reason: format!("named .safetensors but holds a {format} checkpoint"),
            });
        }
        files.push(f);
        per_file.push(t);
    }
    let format = if files.len() == 1 {
        "safetensors"
    } else {
        "safetensors-sharded"
    };
    Parts::of(format, files, per_file)
}

/// The shards an index names and the tensors it puts in each, validated: `text` is the contents
/// of the index file `index`. Shard names must be plain relative paths that stay inside the
/// index's folder (no `..`, no absolute paths); nothing is opened here.
pub fn index_shards(index: &Path, text: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let json: Value = serde_json::from_str(text)
        .map_err(|e| Error::index(index, format!("not valid JSON: {e}")))?;
    let Some(Value::Object(weight_map)) = json.get("weight_map") else {
        return Err(Error::index(index, "no \"weight_map\" object"));
    };
    // shard file name -> tensor names the index puts there
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tensor, shard) in weight_map {
        let Value::String(shard) = shard else {
            return Err(Error::index(
                index,
                format!("shard of tensor '{tensor}' is not a string"),
            ));
        };
        let rel = Path::new(shard);
        let plain = rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if shard.is_empty()
            || !plain
            || !rel.components().any(|c| matches!(c, Component::Normal(_)))
        {
            return Err(Error::index(
                index,
                format!("shard '{shard}' of tensor '{tensor}' is not a plain path inside the checkpoint folder"),
            ));
        }
        wanted
            .entry(shard.clone())
            .or_default()
            .push(tensor.clone());
    }
    if wanted.is_empty() {
        return Err(Error::index(index, "the weight_map is empty"));
    }
    Ok(wanted)
}

/// Largest index file read: real ones list a few thousand tensors in well under a megabyte.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;

pub(crate) fn open_index(index: &Path) -> Result<Parts> {
    let raw = read_small(index, MAX_INDEX_BYTES, |size| {
        Error::index(
            index,
            format!(
                "the index is {size} bytes; more than {MAX_INDEX_BYTES} is not a checkpoint index"
            ),
        )
    })?;
    let text = std::str::from_utf8(&raw).map_err(|e| {
        Error::index(
            index,
            format!(
                "not UTF-8 text (byte {}): not a JSON index",
                e.valid_up_to()
            ),
        )
    })?;
    let wanted = index_shards(index, text)?;
    let base = index.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    let mut per_file = Vec::new();
    let mut format = None;
    for (shard, names) in wanted {
        let shard_path = base.join(&shard);
        if !shard_path.exists() {
            return Err(Error::MissingShard {
                index: index.to_path_buf(),
                shard,
                path: shard_path,
            });
        }
        check_inside(base, &shard_path)?;
        let (file, infos, shard_format) = open_part(map_file(&shard_path)?)?;
        let sharded = match shard_format {
            "safetensors" => "safetensors-sharded",
            "pytorch" => "pytorch-sharded",
            other => {
                return Err(Error::index(
                    index,
                    format!(
                        "shard {} is a {other} file; an index names safetensors or PyTorch shards",
                        shard_path.display()
                    ),
                ))
            }
        };
        if format.is_some_and(|f| f != sharded) {
            return Err(Error::index(
                index,
                "the index mixes safetensors and PyTorch shards",
            ));
        }
        format = Some(sharded);
        let mut by_name: HashMap<String, TensorInfo> =
            infos.into_iter().map(|t| (t.name.clone(), t)).collect();
        let mut keep = Vec::with_capacity(names.len());
        for name in names {
            match by_name.remove(&name) {
                Some(info) => keep.push(info),
                None => {
                    return Err(Error::index(
                        index,
                        format!(
                            "tensor '{name}' is not in its shard {}",
                            shard_path.display()
                        ),
                    ))
                }
            }
        }
        files.push(file);
        per_file.push(keep);
    }
    Parts::of(format.unwrap_or("safetensors-sharded"), files, per_file)
}
