//! Opening checkpoints: one file (safetensors, GGUF, PyTorch zip, NumPy `.npy` / `.npz`), a folder,
//! or a sharded index. Files are read by what their bytes say, not by their names.
//!
//! Everything read from disk is validated here, before any tensor data is touched; afterwards the
//! streaming code can slice the mapped files without further checks.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Component, Path, PathBuf};

use memmap2::{Mmap, MmapOptions};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::format::{self, gguf, npy, torch, Part, TensorInfo};

/// File name of the index that Hugging Face sharded checkpoints use.
pub const INDEX_NAME: &str = "model.safetensors.index.json";

/// File name of a Hugging Face PyTorch checkpoint in one file.
pub const PYTORCH_NAME: &str = "pytorch_model.bin";

/// One memory-mapped file of a checkpoint.
#[derive(Debug)]
pub struct MappedFile {
    /// Path as opened.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// The header's `__metadata__` map (safetensors), or the scalar GGUF metadata as text.
    pub metadata: BTreeMap<String, String>,
    /// The GGUF key/value metadata with its types (empty for other formats). Arrays of strings
    /// and of arrays are validated but not kept ([`gguf::Array::Skipped`]); see
    /// [`Checkpoint::gguf_metadata`].
    pub kv: Vec<(String, gguf::Value)>,
    /// Number of tensors in the file's header.
    pub n_tensors: usize,
    map: Option<Mmap>,
    /// The open file and its modification time when it was mapped, to notice changes.
    file: File,
    modified: Option<std::time::SystemTime>,
}

impl MappedFile {
    /// Fails when the file was truncated or written since it was mapped: reading a mapping past
    /// a truncated end kills the process (SIGBUS), and a file rewritten in place would give
    /// numbers that describe neither version. Cheap (one `fstat`); the streaming engine calls it
    /// before each chunk and after the run, which leaves only a change in the middle of a chunk
    /// undetected.
    pub fn check_unchanged(&self) -> Result<()> {
        let meta = self.file.metadata().map_err(|e| Error::io(&self.path, e))?;
        let reason = if meta.len() < self.size {
            format!(
                "the file shrank from {} to {} bytes while it was being read",
                self.size,
                meta.len()
            )
        } else if meta.len() != self.size || meta.modified().ok() != self.modified {
            "the file was modified while it was being read; results would describe neither version"
                .to_string()
        } else {
            return Ok(());
        };
        Err(Error::Changed {
            path: self.path.clone(),
            reason,
        })
    }

    /// The whole file's bytes (empty for an empty file, which cannot be mapped).
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Asks the kernel to map `[offset, offset + len)` now, in one call, rather than page by page
    /// as the workers touch it; a hint, so failures (old kernels) are ignored.
    pub fn prefault(&self, offset: u64, len: u64) {
        #[cfg(target_os = "linux")]
        if let Some(map) = &self.map {
            if map
                .advise_range(memmap2::Advice::PopulateRead, offset as usize, len as usize)
                .is_err()
            {
                let _ = map.advise_range(memmap2::Advice::WillNeed, offset as usize, len as usize);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offset, len);
    }

    /// Drops this process's page-table entries for a range it has finished reading, so resident
    /// memory does not grow with the model; the kernel keeps the pages in its cache.
    pub fn release(&self, offset: u64, len: u64) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            // Only whole pages inside the range: a page shared with a neighbouring tensor stays.
            let page = 4096u64;
            let start = offset.div_ceil(page) * page;
            let end = (offset + len) / page * page;
            if end > start {
                // SAFETY: the mapping is a read-only private mapping of a file that this process
                // never writes, so dropping its pages cannot lose data: a later access refaults
                // the same bytes from the file. No reference into the range is kept by the caller.
                unsafe {
                    let _ = map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start as usize,
                        (end - start) as usize,
                    );
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }
}

/// A tensor of a checkpoint: its header entry and the file it lives in.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// The validated header entry.
    pub info: TensorInfo,
    /// Index into [`Checkpoint::files`].
    pub file: usize,
}

/// An opened, validated checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// What the user named.
    pub path: PathBuf,
    /// `"safetensors"`, `"gguf"`, `"pytorch"`, `"npy"` or `"npz"`; `"safetensors-sharded"` or
    /// `"pytorch-sharded"` when read through an index or from several files.
    pub format: &'static str,
    /// The mapped files.
    pub files: Vec<MappedFile>,
    /// Tensors sorted by name.
    pub tensors: Vec<Tensor>,
}

impl Checkpoint {
    /// Opens a checkpoint file (`.safetensors`, GGUF, a PyTorch `.bin`/`.pt`/`.pth` zip, `.npy`,
    /// `.npz`), an index file (`*.index.json`), or a folder holding a checkpoint.
    pub fn open(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return open_dir(path);
        }
        if path.to_string_lossy().ends_with(".json") {
            return open_index(path, path);
        }
        let (file, infos, format) = open_part(map_file(path)?)?;
        if format == "gguf" && gguf::split_of(&file.kv).is_some() {
            return open_gguf_split(path, file, infos);
        }
        assemble(path, format, vec![file], vec![infos])
    }

    /// Total number of elements.
    pub fn numel(&self) -> u64 {
        self.tensors.iter().map(|t| t.info.numel()).sum()
    }

    /// Looks a tensor up by name.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors
            .binary_search_by(|t| t.info.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.tensors[i])
    }

    /// All the key/value metadata of a GGUF checkpoint, vocabulary and merges included (read
    /// again from the mapped header); `None` for other formats.
    pub fn gguf_metadata(&self) -> Result<Option<Vec<(String, gguf::Value)>>> {
        match self.files.first() {
            Some(f) if self.format == "gguf" || self.format == "gguf-split" => {
                Ok(Some(gguf::parse_all(&f.path, f.bytes())?.metadata))
            }
            _ => Ok(None),
        }
    }

    /// The bytes of a tensor.
    pub fn data(&self, t: &Tensor) -> &[u8] {
        let start = t.info.offset as usize;
        &self.files[t.file].bytes()[start..start + t.info.nbytes as usize]
    }
}

fn map_file(path: &Path) -> Result<MappedFile> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    let (size, modified) = (meta.len(), meta.modified().ok());
    if !meta.is_file() {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let map = if size == 0 {
        None
    } else {
        // SAFETY: the mapping is read-only and private. As with every memory-mapped reader, a file
        // truncated by another process while we read it can fault; the README states this.
        let map = unsafe { MmapOptions::new().map_copy_read_only(&file) }
            .map_err(|e| Error::io(path, e))?;
        Some(map)
    };
    Ok(MappedFile {
        path: path.to_path_buf(),
        size,
        metadata: BTreeMap::new(),
        kv: Vec::new(),
        n_tensors: 0,
        map,
        file,
        modified,
    })
}

/// Reads one file of a checkpoint by its content (see [`format::read_part`]).
fn open_part(file: MappedFile) -> Result<(MappedFile, Vec<TensorInfo>, &'static str)> {
    let part = format::read_part(&file.path, file.bytes())?;
    Ok(with_part(file, part))
}

/// The file with its part's metadata, the part's tensors and its format.
fn with_part(mut file: MappedFile, part: Part) -> (MappedFile, Vec<TensorInfo>, &'static str) {
    file.metadata = part.metadata;
    file.kv = part.kv;
    file.n_tensors = part.tensors.len();
    (file, part.tensors, part.format)
}

/// A split GGUF (llama.cpp's `gguf-split`: `NAME-00001-of-00003.gguf`, …), opened from any of its
/// shards (`first` is that shard, already parsed): every shard must be present, numbered and
/// counted consistently; the first shard's metadata (the only one holding the architecture and
/// head counts) sets the Q/K row order of all of them.
fn open_gguf_split(
    user_path: &Path,
    first: MappedFile,
    infos: Vec<TensorInfo>,
) -> Result<Checkpoint> {
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
                let (file, infos, format) = open_part(map_file(&shard)?)?;
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
    assemble(user_path, "gguf-split", files, per_file)
}

fn assemble(
    path: &Path,
    format: &'static str,
    files: Vec<MappedFile>,
    per_file: Vec<Vec<TensorInfo>>,
) -> Result<Checkpoint> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut tensors = Vec::new();
    for (i, infos) in per_file.into_iter().enumerate() {
        for info in infos {
            if let Some(&other) = seen.get(&info.name) {
                return Err(Error::tensor(
                    &files[i].path,
                    &info.name,
                    format!("also stored in {}", files[other].path.display()),
                ));
            }
            seen.insert(info.name.clone(), i);
            tensors.push(Tensor { info, file: i });
        }
    }
    tensors.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    Ok(Checkpoint {
        path: path.to_path_buf(),
        format,
        files,
        tensors,
    })
}

fn open_dir(dir: &Path) -> Result<Checkpoint> {
    let index = dir.join(INDEX_NAME);
    if index.is_file() {
        return open_index(dir, &index);
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
            1 => return open_index(dir, &torch_indexes[0]),
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
            let (file, infos, format) = open_part(map_file(&single)?)?;
            return assemble(dir, format, vec![file], vec![infos]);
        }
        match consolidated.len() {
            0 => {}
            1 => {
                let (file, infos, format) = open_part(map_file(&consolidated[0])?)?;
                return assemble(dir, format, vec![file], vec![infos]);
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
        let (file, infos, format) = open_part(map_file(&ggufs[0])?)?;
        match gguf::split_of(&file.kv) {
            Some((_, count)) if count == ggufs.len() as u64 => {
                return open_gguf_split(dir, file, infos);
            }
            None if ggufs.len() == 1 => return assemble(dir, format, vec![file], vec![infos]),
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
            let file = map_file(&p)?;
            let part = npy::read(&file.path, file.bytes())?;
            let (f, t, _) = with_part(file, part);
            files.push(f);
            per_file.push(t);
        }
        return assemble(dir, "npy", files, per_file);
    }
    if indexes.len() == 1 {
        return open_index(dir, &indexes[0]);
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
        let (f, t, format) = open_part(map_file(&p)?)?;
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
    assemble(dir, format, files, per_file)
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

fn open_index(user_path: &Path, index: &Path) -> Result<Checkpoint> {
    let size = std::fs::metadata(index)
        .map_err(|e| Error::io(index, e))?
        .len();
    if size > MAX_INDEX_BYTES {
        return Err(Error::index(
            index,
            format!(
                "the index is {size} bytes; more than {MAX_INDEX_BYTES} is not a checkpoint index"
            ),
        ));
    }
    let raw = std::fs::read(index).map_err(|e| Error::io(index, e))?;
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
    assemble(
        user_path,
        format.unwrap_or("safetensors-sharded"),
        files,
        per_file,
    )
}
