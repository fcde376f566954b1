//! A strict reader of zip central directories (PKWARE APPNOTE 6.3, with zip64), for the two zip-based
//! formats modelkin reads: PyTorch checkpoints (`torch.save` since 1.6) and NumPy `.npz` files.
//!
//! It only locates entries inside the memory-mapped file: it never decompresses or decrypts, so a
//! compressed or encrypted entry is reported as such and the format reading it refuses it. Sizes and
//! offsets come from the central directory (writers such as `torch.save` and `numpy.savez` leave
//! them out of the local headers); a local header only gives the length of its name and extra field,
//! i.e. where the entry's data starts.
//!
//! Why not the `zip` crate: its reader is lenient by design (it tries several end records, accepts
//! data prepended to the archive and shifts every offset accordingly), and it reads through
//! `Read + Seek`. For a forensic tool an archive must have one reading, the one `torch.load` and
//! `numpy.load` give it, so this reader refuses what it cannot read unambiguously: more than one
//! end record candidate, bytes between the central directory and the end record, multi-disk
//! archives, duplicate or overlapping entries, local headers that disagree with the central
//! directory. It is about 400 lines with its documentation, checks every offset with checked
//! arithmetic and works on the mapped bytes directly; `zip` 9.4 without default features would add
//! six crates (`getrandom` and `typed-path` among them) to a core that has six dependencies.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};

/// Most entries accepted in one archive (a bound on memory for a hostile central directory).
pub const MAX_ENTRIES: usize = 1 << 20;

const LOCAL_SIG: &[u8; 4] = b"PK\x03\x04";
const CENTRAL_SIG: &[u8; 4] = b"PK\x01\x02";
const END_SIG: &[u8; 4] = b"PK\x05\x06";
const END64_SIG: &[u8; 4] = b"PK\x06\x06";
const LOCATOR_SIG: &[u8; 4] = b"PK\x06\x07";
const END_LEN: usize = 22;
const LOCATOR_LEN: usize = 20;
const END64_LEN: usize = 56;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;

/// Whether a file starting with `head` is a zip archive (one with entries, or an empty one).
pub fn is_zip(head: &[u8]) -> bool {
    head.starts_with(LOCAL_SIG) || head.starts_with(END_SIG)
}

/// One entry of an archive, as located and validated by [`Archive::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name as stored (a `/`-separated path).
    pub name: String,
    /// Compression method (0 = stored, 8 = deflate, …).
    pub method: u16,
    /// Whether the entry is encrypted (general-purpose flag bit 0 or 6, or AES method 99).
    pub encrypted: bool,
    /// Size of the entry's contents once decompressed.
    pub size: u64,
    /// Size of the entry's bytes in the archive.
    pub compressed_size: u64,
    /// Offset of the entry's local header.
    pub header_offset: u64,
    /// Offset of the entry's first data byte (after the local header, its name and extra field).
    pub data_offset: u64,
}

impl Entry {
    /// Whether the entry's bytes are its contents: stored without compression or encryption.
    pub fn is_stored(&self) -> bool {
        self.method == 0 && !self.encrypted
    }

    /// Why the entry's bytes are not its contents ("compressed with deflate", "encrypted"), or
    /// `None` when the entry is stored.
    pub fn unreadable(&self) -> Option<String> {
        if self.encrypted {
            Some("encrypted".into())
        } else if self.method != 0 {
            let name = match self.method {
                8 => "deflate",
                9 => "deflate64",
                12 => "bzip2",
                14 => "lzma",
                93 => "zstd",
                95 => "xz",
                _ => "an unknown method",
            };
            Some(format!("compressed with {name} (method {})", self.method))
        } else {
            None
        }
    }

    /// The entry's bytes within the archive's `bytes` (validated by [`Archive::read`]).
    pub fn data<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let start = self.data_offset as usize;
        &bytes[start..start + self.compressed_size as usize]
    }
}

/// The entries of a zip archive, in central-directory order.
#[derive(Debug, Clone)]
pub struct Archive {
    /// Every entry.
    pub entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

impl Archive {
    /// Looks an entry up by its exact name.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// Reads and validates the central directory of the archive whose full contents are `bytes`.
    pub fn read(path: &Path, bytes: &[u8]) -> Result<Archive> {
        let bad = |reason: String| Error::file(path, "zip archive", reason);
        let end = find_end(bytes).map_err(&bad)?;
        let r = Reader(bytes);
        // `find_end` checked that the whole end record is there.
        let f16 = |at: usize| r.u16(end + at).unwrap_or(0);
        let f32 = |at: usize| r.u32(end + at).unwrap_or(0);
        let mut disk = f16(4) as u32;
        let mut cd_disk = f16(6) as u32;
        let mut n_disk = f16(8) as u64;
        let mut n_total = f16(10) as u64;
        let mut cd_size = f32(12) as u64;
        let mut cd_offset = f32(16) as u64;
        // The central directory ends where the zip64 end record starts, or else at the end record.
        let mut cd_end = end as u64;
        if end >= LOCATOR_LEN && bytes[end - LOCATOR_LEN..].starts_with(LOCATOR_SIG) {
            let loc = end - LOCATOR_LEN;
            let (Some(rec_disk), Some(rec), Some(disks)) =
                (r.u32(loc + 4), r.u64(loc + 8), r.u32(loc + 16))
            else {
                return Err(bad("truncated zip64 end-record locator".into()));
            };
            if rec_disk != 0 || disks > 1 {
                return Err(Error::unsupported(
                    path,
                    "multi-disk (split) zip archives are not supported",
                ));
            }
            let rec_end = rec.checked_add(END64_LEN as u64);
            if rec_end.is_none_or(|e| e > loc as u64) {
                return Err(bad(format!(
                    "zip64 end record at offset {rec} does not lie before its locator at offset {loc}"
                )));
            }
            let at = rec as usize;
            if !bytes[at..].starts_with(END64_SIG) {
                return Err(bad(format!("no zip64 end record at offset {rec}")));
            }
            // The record's 56 bytes lie before the locator, checked above.
            disk = r.u32(at + 16).unwrap_or(0);
            cd_disk = r.u32(at + 20).unwrap_or(0);
            n_disk = r.u64(at + 24).unwrap_or(0);
            n_total = r.u64(at + 32).unwrap_or(0);
            cd_size = r.u64(at + 40).unwrap_or(0);
            cd_offset = r.u64(at + 48).unwrap_or(0);
            cd_end = rec;
        }
        if disk != 0 || cd_disk != 0 || n_disk != n_total {
            return Err(Error::unsupported(
                path,
                "multi-disk (split) zip archives are not supported",
            ));
        }
        if cd_offset.checked_add(cd_size) != Some(cd_end) {
            return Err(bad(format!(
                "the central directory ({cd_size} bytes at offset {cd_offset}) does not end where the \
                 end record starts (offset {cd_end}): truncated, or data added to the archive?"
            )));
        }
        if n_total > (cd_size / CENTRAL_LEN as u64) || n_total as usize > MAX_ENTRIES {
            return Err(bad(format!(
                "the end record declares {n_total} entries, more than a {cd_size}-byte central \
                 directory can hold (or more than {MAX_ENTRIES})"
            )));
        }

        let mut entries = Vec::with_capacity(n_total as usize);
        let mut by_name = HashMap::with_capacity(n_total as usize);
        let mut at = cd_offset as usize;
        let cd_end = cd_end as usize;
        for i in 0..n_total as usize {
            let entry = read_central(bytes, at, cd_end).map_err(|e| {
                bad(format!(
                    "central directory entry {i} at offset {at}: {e} (truncated central directory?)"
                ))
            })?;
            at = entry.1;
            let entry = entry.0;
            if by_name.insert(entry.name.clone(), i).is_some() {
                return Err(bad(format!("entry '{}' appears twice", entry.name)));
            }
            entries.push(entry);
        }
        if at != cd_end {
            return Err(bad(format!(
                "the central directory holds {} bytes after its {n_total} entries",
                cd_end - at
            )));
        }
        for e in &mut entries {
            locate(bytes, e, cd_offset).map_err(|reason| {
                bad(format!(
                    "entry '{}' (local header at offset {}): {reason}",
                    e.name, e.header_offset
                ))
            })?;
        }
        let mut order: Vec<&Entry> = entries.iter().collect();
        order.sort_by_key(|e| e.header_offset);
        for w in order.windows(2) {
            if w[0].data_offset + w[0].compressed_size > w[1].header_offset {
                return Err(bad(format!(
                    "entries '{}' and '{}' overlap",
                    w[0].name, w[1].name
                )));
            }
        }
        Ok(Archive { entries, by_name })
    }
}

/// Little-endian fields at absolute offsets; `None` past the end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.0.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, at: usize) -> Option<u16> {
        self.array(at).map(u16::from_le_bytes)
    }
    fn u32(&self, at: usize) -> Option<u32> {
        self.array(at).map(u32::from_le_bytes)
    }
    fn u64(&self, at: usize) -> Option<u64> {
        self.array(at).map(u64::from_le_bytes)
    }
}

/// The offset of the end-of-central-directory record: the one candidate whose comment ends exactly
/// at the end of the file (a comment may hold the signature too: more than one candidate is refused).
fn find_end(bytes: &[u8]) -> std::result::Result<usize, String> {
    let len = bytes.len();
    if len < END_LEN {
        return Err(format!(
            "file is {len} bytes, too short to hold a zip end record (truncated?)"
        ));
    }
    let lowest = len.saturating_sub(END_LEN + u16::MAX as usize);
    let mut found = None;
    for pos in (lowest..=len - END_LEN).rev() {
        if &bytes[pos..pos + 4] == END_SIG {
            let comment = u16::from_le_bytes([bytes[pos + 20], bytes[pos + 21]]) as usize;
            if pos + END_LEN + comment == len {
                if found.is_some() {
                    return Err(
                        "more than one end-of-central-directory record fits the end of \
                                the file; the archive is ambiguous"
                            .into(),
                    );
                }
                found = Some(pos);
            }
        }
    }
    found.ok_or_else(|| {
        "no end-of-central-directory record at the end of the file (truncated?)".into()
    })
}

/// Reads the central-directory header at `at` (which must end by `cd_end`); returns the entry (its
/// data offset still unknown) and the offset of the next header.
fn read_central(
    bytes: &[u8],
    at: usize,
    cd_end: usize,
) -> std::result::Result<(Entry, usize), String> {
    let fixed_end = at
        .checked_add(CENTRAL_LEN)
        .filter(|&e| e <= cd_end)
        .ok_or("header runs past the end of the central directory")?;
    let h = &bytes[at..fixed_end];
    if &h[..4] != CENTRAL_SIG {
        return Err("bad central directory signature".into());
    }
    let r = Reader(h);
    let field16 = |o| r.u16(o).unwrap_or(0);
    let field32 = |o| r.u32(o).unwrap_or(0);
    let flags = field16(8);
    let method = field16(10);
    let mut compressed_size = field32(20) as u64;
    let mut size = field32(24) as u64;
    let name_len = field16(28) as usize;
    let extra_len = field16(30) as usize;
    let comment_len = field16(32) as usize;
    let mut disk = field16(34) as u32;
    let mut header_offset = field32(42) as u64;
    let next = fixed_end + name_len + extra_len + comment_len;
    if next > cd_end {
        return Err(
            "name, extra field or comment runs past the end of the central directory".into(),
        );
    }
    let raw_name = &bytes[fixed_end..fixed_end + name_len];
    let name = std::str::from_utf8(raw_name)
        .map_err(|_| "entry name is not UTF-8")?
        .to_string();
    // The zip64 extra field holds, in this order, those of the four values that are saturated.
    let mut extra = &bytes[fixed_end + name_len..fixed_end + name_len + extra_len];
    while extra.len() >= 4 {
        let id = u16::from_le_bytes([extra[0], extra[1]]);
        let len = u16::from_le_bytes([extra[2], extra[3]]) as usize;
        let body = extra
            .get(4..4 + len)
            .ok_or_else(|| format!("extra field of '{name}' runs past its end"))?;
        if id == 0x0001 {
            let b = Reader(body);
            let mut pos = 0;
            let mut take = |v: &mut u64| -> std::result::Result<(), String> {
                *v = b
                    .u64(pos)
                    .ok_or_else(|| format!("zip64 extra field of '{name}' is too short"))?;
                pos += 8;
                Ok(())
            };
            if size == u32::MAX as u64 {
                take(&mut size)?;
            }
            if compressed_size == u32::MAX as u64 {
                take(&mut compressed_size)?;
            }
            if header_offset == u32::MAX as u64 {
                take(&mut header_offset)?;
            }
            if disk == u16::MAX as u32 {
                disk = b
                    .u32(pos)
                    .ok_or_else(|| format!("zip64 extra field of '{name}' is too short"))?;
            }
        }
        extra = &extra[4 + len..];
    }
    if disk != 0 {
        return Err(format!(
            "entry '{name}' is on disk {disk} of a split archive"
        ));
    }
    let encrypted = flags & 0x0001 != 0 || flags & 0x0040 != 0 || method == 99;
    if method == 0 && !encrypted && compressed_size != size {
        return Err(format!(
            "stored entry '{name}' is {compressed_size} bytes in the archive but {size} bytes long"
        ));
    }
    let entry = Entry {
        name,
        method,
        encrypted,
        size,
        compressed_size,
        header_offset,
        data_offset: 0,
    };
    Ok((entry, next))
}

/// Reads an entry's local header (which must lie before the central directory) and sets where its
/// data starts, checking that the data ends before the central directory too.
fn locate(bytes: &[u8], e: &mut Entry, cd_offset: u64) -> std::result::Result<(), String> {
    let outside = || {
        format!(
            "the local header lies outside the archive's data (which ends at offset {cd_offset})"
        )
    };
    if e.header_offset
        .checked_add(LOCAL_LEN as u64)
        .is_none_or(|x| x > cd_offset)
    {
        return Err(outside());
    }
    let at = e.header_offset as usize;
    let h = &bytes[at..at + LOCAL_LEN];
    if &h[..4] != LOCAL_SIG {
        return Err("bad local header signature".into());
    }
    let r = Reader(h);
    let method = r.u16(8).unwrap_or(0);
    let name_len = r.u16(26).unwrap_or(0) as u64;
    let extra_len = r.u16(28).unwrap_or(0) as u64;
    let data = e.header_offset + LOCAL_LEN as u64 + name_len + extra_len;
    if data > cd_offset {
        return Err(outside());
    }
    let name = &bytes[at + LOCAL_LEN..at + LOCAL_LEN + name_len as usize];
    if name != e.name.as_bytes() {
        return Err(format!(
            "the local header names '{}', not the central directory's name",
            String::from_utf8_lossy(name)
        ));
    }
    if method != e.method {
        return Err(format!(
            "the local header says compression method {method}, the central directory {}",
            e.method
        ));
    }
    if data
        .checked_add(e.compressed_size)
        .is_none_or(|end| end > cd_offset)
    {
        return Err(format!(
            "its {} bytes of data at offset {data} run past the start of the central directory \
             (offset {cd_offset}; truncated?)",
            e.compressed_size
        ));
    }
    e.data_offset = data;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::zip::{archive, stored, stored_as, Item};

    fn err(bytes: &[u8]) -> String {
        Archive::read(Path::new("a.zip"), bytes)
            .unwrap_err()
            .to_string()
    }

    fn cd_offset(bytes: &[u8]) -> usize {
        let end = bytes.len() - END_LEN;
        u32::from_le_bytes(bytes[end + 16..end + 20].try_into().unwrap()) as usize
    }

    #[test]
    fn stored_entries_are_located() {
        let items = [
            Item {
                name: "a/data.pkl",
                data: b"pickle",
                method: 0,
                pad: 0,
            },
            Item {
                name: "a/data/0",
                data: &[1, 2, 3, 4],
                method: 0,
                pad: 40,
            },
        ];
        for zip64 in [false, true] {
            let bytes = archive(&items, zip64);
            let a = Archive::read(Path::new("x"), &bytes).unwrap();
            assert_eq!(a.entries.len(), 2);
            assert_eq!(a.get("a/data.pkl").unwrap().data(&bytes), b"pickle");
            let d = a.get("a/data/0").unwrap();
            assert_eq!(d.data(&bytes), &[1, 2, 3, 4]);
            assert!(d.is_stored() && d.unreadable().is_none());
            assert!(a.get("missing").is_none());
        }
    }

    #[test]
    fn an_empty_archive_has_no_entries() {
        let bytes = stored(&[]);
        assert!(is_zip(&bytes));
        assert!(Archive::read(Path::new("x"), &bytes)
            .unwrap()
            .entries
            .is_empty());
    }

    #[test]
    fn a_comment_after_the_end_record_is_allowed() {
        let mut bytes = stored(&[("x", b"1")]);
        let n = bytes.len();
        bytes[n - 2..].copy_from_slice(&3u16.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        assert_eq!(
            Archive::read(Path::new("x"), &bytes).unwrap().entries.len(),
            1
        );
    }

    #[test]
    fn truncation_anywhere_is_refused() {
        let bytes = stored(&[("a", &[7; 100]), ("b", &[8; 50])]);
        for cut in [0, 10, 21, 60, 150, bytes.len() - 30, bytes.len() - 1] {
            assert!(
                Archive::read(Path::new("x"), &bytes[..cut]).is_err(),
                "cut at {cut} was accepted"
            );
        }
        assert!(err(&bytes[..bytes.len() - 1]).contains("no end-of-central-directory"));
    }

    #[test]
    fn a_truncated_central_directory_is_refused() {
        let long_a = "a".repeat(30);
        let long_b = "b".repeat(30);
        let bytes = stored(&[(long_a.as_str(), &[7; 10]), (long_b.as_str(), &[8; 10])]);
        // Claim one more entry than the directory holds (names long enough for its size to allow it).
        let mut more = bytes.clone();
        let end = more.len() - END_LEN;
        more[end + 8..end + 12].copy_from_slice(&[3, 0, 3, 0]);
        assert!(err(&more).contains("central directory entry 2"));
        // A central directory whose size runs past its end record.
        let mut long = bytes.clone();
        let size = u32::from_le_bytes(long[end + 12..end + 16].try_into().unwrap());
        long[end + 12..end + 16].copy_from_slice(&(size + 9).to_le_bytes());
        assert!(err(&long).contains("does not end where the end record starts"));
    }

    #[test]
    fn offsets_past_the_end_are_refused() {
        let bytes = stored(&[("a", &[7; 10])]);
        let cd = cd_offset(&bytes);
        // Local header offset far past the end of the file.
        let mut far = bytes.clone();
        far[cd + 42..cd + 46].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        assert!(err(&far).contains("outside the archive's data"));
        // A size that runs into the central directory.
        let mut big = bytes.clone();
        big[cd + 20..cd + 28].copy_from_slice(&[200, 0, 0, 0, 200, 0, 0, 0]);
        assert!(err(&big).contains("run past the start of the central directory"));
        // Zip64 values past the end.
        let mut z = stored_as(&[("a", &[1; 8])], true);
        let cd = z.len() - END_LEN - LOCATOR_LEN - END64_LEN - (CENTRAL_LEN + 1 + 28);
        let extra = cd + CENTRAL_LEN + 1 + 4;
        z[extra + 16..extra + 24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(err(&z).contains("outside the archive's data"));
    }

    #[test]
    fn compressed_and_encrypted_entries_are_marked() {
        let bytes = archive(
            &[Item {
                name: "a/data/0",
                data: &[1, 2, 3],
                method: 8,
                pad: 0,
            }],
            false,
        );
        let a = Archive::read(Path::new("x"), &bytes).unwrap();
        let e = a.get("a/data/0").unwrap();
        assert!(!e.is_stored());
        assert!(e.unreadable().unwrap().contains("deflate"));
        let mut enc = stored(&[("s", b"1")]);
        let cd = cd_offset(&enc);
        enc[cd + 8] |= 1;
        let a = Archive::read(Path::new("x"), &enc).unwrap();
        assert_eq!(a.entries[0].unreadable().unwrap(), "encrypted");
    }

    #[test]
    fn ambiguous_archives_are_refused() {
        // Two entries with one name.
        assert!(err(&stored(&[("a", b"1"), ("a", b"2")])).contains("appears twice"));
        // Two central-directory entries pointing at one local header.
        let mut twice = stored(&[("a", b"1"), ("a", b"2")]);
        let cd = cd_offset(&twice);
        let second = cd + CENTRAL_LEN + 1;
        twice[second + 46] = b'b';
        twice[second + 42..second + 46].copy_from_slice(&0u32.to_le_bytes());
        assert!(err(&twice).contains("local header names 'a'"));
        // A local header that disagrees with the directory about compression.
        let mut method = stored(&[("a", b"1")]);
        method[8] = 8;
        assert!(err(&method).contains("compression method"));
        // Bytes prepended to the archive shift every offset: refused, not guessed.
        let mut shifted = b"junk".to_vec();
        shifted.extend_from_slice(&stored(&[("a", b"1")]));
        assert!(err(&shifted).contains("does not end where the end record starts"));
    }

    #[test]
    fn absurd_entry_counts_are_refused_before_allocating() {
        let mut bytes = stored(&[("a", b"1")]);
        let end = bytes.len() - END_LEN;
        bytes[end + 8..end + 12].copy_from_slice(&[0xfe, 0xff, 0xfe, 0xff]);
        assert!(err(&bytes).contains("more than a"));
        let mut z = stored_as(&[("a", b"1")], true);
        let rec = z.len() - END_LEN - LOCATOR_LEN - END64_LEN;
        z[rec + 24..rec + 40].copy_from_slice(&[0xff; 16]);
        assert!(err(&z).contains("more than a"));
    }

    #[test]
    fn split_archives_are_refused() {
        let mut bytes = stored(&[("a", b"1")]);
        let end = bytes.len() - END_LEN;
        bytes[end + 4] = 1;
        assert!(err(&bytes).contains("multi-disk"));
    }

    #[test]
    fn a_bad_zip64_locator_is_refused() {
        let mut z = stored_as(&[("a", b"1")], true);
        let loc = z.len() - END_LEN - LOCATOR_LEN;
        z[loc + 8..loc + 16].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        assert!(err(&z).contains("zip64 end record"));
    }

    mod fuzz {
        use super::super::*;
        use crate::testing::zip::stored;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn mutated_archives_never_panic_and_stay_in_bounds(
                edits in proptest::collection::vec((0usize..512, any::<u8>(), 0u8..3), 1..6)
            ) {
                let mut b = stored(&[("a/data.pkl", b"pickle"), ("a/data/0", &[1; 40]), ("a/version", b"3")]);
                for (pos, byte, how) in edits {
                    let i = pos % (b.len() + 1);
                    match how {
                        0 if i < b.len() => b[i] = byte,
                        1 => b.insert(i, byte),
                        _ => b.truncate(i),
                    }
                }
                if let Ok(a) = Archive::read(Path::new("x"), &b) {
                    for e in &a.entries {
                        prop_assert_eq!(e.data(&b).len() as u64, e.compressed_size);
                    }
                }
            }
        }
    }
}
