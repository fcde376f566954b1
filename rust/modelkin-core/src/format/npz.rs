//! NumPy `.npz` files: a zip archive of `.npy` members, as `numpy.savez` writes them. Each member is
//! one tensor named after it (without `.npy`), its header read by [`super::npy`] and its data read
//! in place. `numpy.savez_compressed` deflates its members: those are refused, naming the member,
//! since reading them would mean decompressing every array into memory.

use std::path::Path;

use super::zip::Archive;
use super::{npy, Part, TensorInfo};
use crate::error::{Error, Result};

/// Reads the arrays of the `.npz` `archive` whose file contents are `bytes`.
pub fn parse(path: &Path, bytes: &[u8], archive: &Archive) -> Result<Vec<TensorInfo>> {
    let mut out = Vec::with_capacity(archive.entries.len());
    for e in &archive.entries {
        if e.name.ends_with('/') && e.size == 0 {
            continue; // a folder entry
        }
        let Some(name) = e.name.strip_suffix(".npy") else {
            return Err(Error::unsupported(
                path,
                format!(
                    "a zip archive that is neither a PyTorch checkpoint (no <name>/data.pkl entry) \
                     nor a NumPy .npz (member '{}' is not a .npy array)",
                    e.name
                ),
            ));
        };
        if let Some(why) = e.unreadable() {
            return Err(Error::unsupported(
                path,
                format!(
                    "member '{}' is {why} (numpy.savez_compressed?); modelkin reads arrays in \
                     place, so only uncompressed .npz files (numpy.savez)",
                    e.name
                ),
            ));
        }
        let mut info = npy::parse_in(path, Some(&e.name), name, e.data(bytes))?;
        info.offset += e.data_offset;
        out.push(info);
    }
    Ok(out)
}

/// A `.npz` file as a checkpoint part.
pub fn read(path: &Path, bytes: &[u8], archive: &Archive) -> Result<Part> {
    Ok(Part::new("npz", parse(path, bytes, archive)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::testing::zip::{archive, stored, Item};

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut out = npy::MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn read(bytes: &[u8]) -> Result<Vec<TensorInfo>> {
        let path = Path::new("arrays.npz");
        parse(path, bytes, &Archive::read(path, bytes)?)
    }

    #[test]
    fn members_are_read_in_place() {
        let w = npy("<f4", "(2,)", &[0, 0, 128, 63, 0, 0, 0, 64]);
        let b = npy("|u1", "(3,)", &[7, 8, 9]);
        let bytes = stored(&[("w.npy", &w), ("sub/b.npy", &b), ("sub/", b"")]);
        let t = read(&bytes).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].name.as_str(), t[0].dtype), ("w", DType::F32));
        let s = &t[1];
        assert_eq!(s.name, "sub/b");
        assert_eq!(
            &bytes[s.offset as usize..(s.offset + s.nbytes) as usize],
            &[7, 8, 9]
        );
    }

    #[test]
    fn compressed_foreign_and_malformed_members_are_refused() {
        let w = npy("<f4", "(2,)", &[0; 8]);
        let deflated = archive(
            &[Item {
                name: "w.npy",
                data: &w,
                method: 8,
                pad: 0,
            }],
            false,
        );
        let msg = read(&deflated).unwrap_err().to_string();
        assert!(
            msg.contains("member 'w.npy' is compressed with deflate"),
            "{msg}"
        );
        let foreign = read(&stored(&[("notes.txt", b"hi")]))
            .unwrap_err()
            .to_string();
        assert!(foreign.contains("'notes.txt' is not a .npy array"));
        let object = read(&stored(&[("o.npy", &npy("|O", "(1,)", &[0; 8]))])).unwrap_err();
        assert!(object
            .to_string()
            .contains("member 'o.npy': this .npy holds Python objects"));
        let short = read(&stored(&[("s.npy", &npy("<f8", "(4,)", &[0; 8]))])).unwrap_err();
        assert!(
            short.to_string().contains("tensor 's'") && short.to_string().contains("truncated")
        );
        let bad = read(&stored(&[("x.npy", b"\x93NUMPY\x01\x00\xff\xff")])).unwrap_err();
        assert!(bad
            .to_string()
            .contains("invalid NumPy .npz archive: member 'x.npy'"));
    }
}
