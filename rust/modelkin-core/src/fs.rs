//! Opening the files of a checkpoint: the one opener every reader uses (checkpoint files, shards,
//! indexes, Meta's `params.json`), and the rule that a file found in a folder or named by an index
//! lies inside that folder.
//!
//! A file is opened without blocking and checked on the opened handle (`fstat`), so a FIFO, socket,
//! device or folder where a file is expected is refused with one message instead of blocking
//! forever in `open()` or `read()`, and nothing can swap the file between the check and the read.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// `O_NONBLOCK` for `open(2)`: opening a FIFO for reading then returns at once instead of waiting
/// for a writer. It changes nothing for a regular file. (The values of the platforms' headers; the
/// `libc` crate is not needed for one constant.)
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64"))
))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    any(target_arch = "mips", target_arch = "mips64")
))]
const O_NONBLOCK: i32 = 0o200;
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    target_arch = "sparc64"
))]
const O_NONBLOCK: i32 = 0x4000;
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
const O_NONBLOCK: i32 = 0x0004; // macOS and the BSDs

/// What a file that is not a regular file is, for messages.
fn kind(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
    }
    "not a regular file"
}

/// Opens `path` for reading, without blocking, and returns it with its metadata when it is a
/// regular file; anything else (FIFO, socket, device, folder) is an [`Error::UnsupportedFormat`]
/// naming the file.
pub fn open_regular(path: &Path) -> Result<(File, Metadata)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let what = kind(&meta);
        let what = if what == "not a regular file" {
            what.to_string()
        } else {
            format!("{what}, not a regular file")
        };
        return Err(Error::unsupported(
            path,
            format!("{what}: modelkin reads checkpoints from regular files only"),
        ));
    }
    Ok((file, meta))
}

/// The whole of a small regular file (an index, a `params.json`), opened by [`open_regular`];
/// `too_big` is the error for a file of more than `max` bytes (given its size).
pub fn read_small(path: &Path, max: u64, too_big: impl Fn(u64) -> Error) -> Result<Vec<u8>> {
    let (file, meta) = open_regular(path)?;
    if meta.len() > max {
        return Err(too_big(meta.len()));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    // One byte more than the limit, in case the file grew since the fstat.
    file.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > max {
        return Err(too_big(out.len() as u64));
    }
    Ok(out)
}

/// Where the files of folder `dir` may lie once symbolic links are resolved: the folder itself, or
/// for a snapshot of the Hugging Face cache (`…/models--ORG--NAME/snapshots/REV`) the whole
/// `models--ORG--NAME` repository folder, whose snapshots link to `../../blobs/SHA`.
fn allowed_root(dir: &Path) -> Result<PathBuf> {
    // The parent of a bare file name is "": the current folder.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let real = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    let mut up = real.ancestors();
    let (_rev, snapshots, repo) = (up.next(), up.next(), up.next());
    if let (Some(snapshots), Some(repo)) = (snapshots, repo) {
        let is_repo = repo
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("models--") || n.starts_with("datasets--"));
        if snapshots.file_name().is_some_and(|n| n == "snapshots") && is_repo {
            return Ok(repo.to_path_buf());
        }
    }
    Ok(real)
}

/// Fails unless `file` (found in folder `dir`, or named by an index there) lies inside `dir` once
/// symbolic links are resolved (see [`allowed_root`]): a link out of the folder would read a file
/// the checkpoint does not hold. A missing file is left to the reader to report.
pub fn check_inside(dir: &Path, file: &Path) -> Result<()> {
    let Ok(real) = file.canonicalize() else {
        return Ok(());
    };
    let root = allowed_root(dir)?;
    let inside = real
        .strip_prefix(&root)
        .is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))));
    if inside {
        return Ok(());
    }
    Err(Error::unsupported(
        file,
        format!(
            "a symbolic link to a file outside the checkpoint folder {}: refused (the files of a \
             checkpoint must lie inside its folder)",
            dir.display()
        ),
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("modelkin-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tmp("fifo");
        let p = d.join("m.safetensors");
        let status = std::process::Command::new("mkfifo").arg(&p).status();
        if !status.is_ok_and(|s| s.success()) {
            return; // no mkfifo here
        }
        let msg = open_regular(&p).unwrap_err().to_string();
        assert!(
            msg.contains("m.safetensors") && msg.contains("FIFO"),
            "{msg}"
        );
        let msg = read_small(&p, 10, |n| Error::index(&p, format!("{n}")))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("FIFO"), "{msg}");
        let msg = open_regular(&d).unwrap_err().to_string();
        assert!(msg.contains("a folder, not a regular file"), "{msg}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn links_out_of_the_folder_are_refused_but_the_hub_cache_links_are_not() {
        use std::os::unix::fs::symlink;
        let d = tmp("links");
        std::fs::write(d.join("secret"), b"secret").unwrap();
        let m = d.join("m");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("own"), b"x").unwrap();
        symlink(d.join("secret"), m.join("out")).unwrap();
        symlink("own", m.join("in")).unwrap();
        assert!(check_inside(&m, &m.join("own")).is_ok());
        let here = Path::new("Cargo.toml"); // a bare name: its folder is ""
        assert!(check_inside(here.parent().unwrap(), here).is_ok());
        assert!(check_inside(&m, &m.join("in")).is_ok());
        let msg = check_inside(&m, &m.join("out")).unwrap_err().to_string();
        assert!(msg.contains("outside the checkpoint folder"), "{msg}");
        assert!(!msg.contains("secret\n") && !msg.contains(d.join("secret").to_str().unwrap()));

        let repo = d.join("models--org--name");
        let snap = repo.join("snapshots").join("abc");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::write(repo.join("blobs").join("sha"), b"x").unwrap();
        symlink("../../blobs/sha", snap.join("model.safetensors")).unwrap();
        symlink(d.join("secret"), snap.join("evil.safetensors")).unwrap();
        assert!(check_inside(&snap, &snap.join("model.safetensors")).is_ok());
        assert!(check_inside(&snap, &snap.join("evil.safetensors")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
