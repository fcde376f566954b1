//! What tests build their inputs with: values encoded as a dtype's bytes, and files of each format
//! written from parts (safetensors, GGUF, zip archives, pickles). Compiled for the crate's own
//! tests and, with the `testing` feature, for tests elsewhere; never part of the library proper.

use half::{bf16, f16};

use crate::dtype::{decode_into, DType};

/// Encodes `values` as `dtype` little-endian bytes (rounding to nearest, saturating integers).
///
/// Never on the hot path. Block-quantised formats are
/// read, never written: for them the result is empty.
pub fn encode(dtype: DType, values: &[f64]) -> Vec<u8> {
    if dtype.is_quantized() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(values.len() * dtype.size());
    for &v in values {
        match dtype {
            DType::F64 => out.extend_from_slice(&v.to_le_bytes()),
            DType::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            DType::F16 => out.extend_from_slice(&f16::from_f64(v).to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&bf16::from_f64(v).to_le_bytes()),
            DType::I64 => out.extend_from_slice(&(v as i64).to_le_bytes()),
            DType::I32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
            DType::I16 => out.extend_from_slice(&(v as i16).to_le_bytes()),
            DType::I8 => out.push(v as i8 as u8),
            DType::U64 => out.extend_from_slice(&(v as u64).to_le_bytes()),
            DType::U32 => out.extend_from_slice(&(v as u32).to_le_bytes()),
            DType::U16 => out.extend_from_slice(&(v as u16).to_le_bytes()),
            DType::U8 => out.push(v as u8),
            DType::BOOL => out.push((v != 0.0) as u8),
            DType::F8_E5M2 | DType::F8_E4M3 => out.push(nearest_fp8(dtype, v)),
            _ => {}
        }
    }
    out
}

fn nearest_fp8(dtype: DType, v: f64) -> u8 {
    // Brute force over the 256 codes: only tests use it.
    let mut best = 0u8;
    let mut best_err = f64::INFINITY;
    for code in 0..=255u8 {
        let mut x = [0.0];
        decode_into(dtype, &[code], &mut x);
        let err = (x[0] - v).abs();
        if err < best_err {
            best_err = err;
            best = code;
        }
    }
    best
}

/// safetensors files.
pub mod safetensors {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use crate::dtype::DType;

    /// Serialises tensors into safetensors bytes .
    ///
    /// `tensors` holds (name, dtype, shape, little-endian data); data lengths must match.
    pub fn serialize(
        tensors: &[(String, DType, Vec<u64>, Vec<u8>)],
        metadata: &BTreeMap<String, String>,
    ) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        if !metadata.is_empty() {
            header.insert(
                "__metadata__".into(),
                serde_json::to_value(metadata).unwrap_or(Value::Null),
            );
        }
        let mut offset = 0u64;
        for (name, dtype, shape, data) in tensors {
            let end = offset + data.len() as u64;
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [offset, end]}),
            );
            offset = end;
        }
        let mut json = Value::Object(header).to_string().into_bytes();
        while !json.len().is_multiple_of(8) {
            json.push(b' ');
        }
        let mut out = Vec::with_capacity(8 + json.len() + offset as usize);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for (_, _, _, data) in tensors {
            out.extend_from_slice(data);
        }
        out
    }
}

/// GGUF files.
pub mod gguf {
    use crate::format::gguf::{get, Array, Value, DEFAULT_ALIGNMENT, MAGIC};

    /// Serialises a GGUF file: version 3, the given metadata, then the
    /// tensors — (name, ggml type number, `ne` innermost first, data) — each at the next multiple of
    /// `alignment` (which is also written as `general.alignment` when it is not the default).
    pub fn serialize(
        metadata: &[(String, Value)],
        tensors: &[(String, u32, Vec<u64>, Vec<u8>)],
        alignment: u64,
    ) -> Vec<u8> {
        fn put_str(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        fn put_array(out: &mut Vec<u8>, a: &Array) {
            macro_rules! each {
                ($ty:expr, $v:expr, $put:expr) => {{
                    out.extend_from_slice(&($ty as u32).to_le_bytes());
                    out.extend_from_slice(&($v.len() as u64).to_le_bytes());
                    for x in $v {
                        $put(&mut *out, x);
                    }
                }};
            }
            match a {
                Array::U8(v) => each!(0, v, |o: &mut Vec<u8>, x: &u8| o.push(*x)),
                Array::I8(v) => each!(1, v, |o: &mut Vec<u8>, x: &i8| o.push(*x as u8)),
                Array::U16(v) => each!(2, v, |o: &mut Vec<u8>, x: &u16| o
                    .extend_from_slice(&x.to_le_bytes())),
                Array::I16(v) => each!(3, v, |o: &mut Vec<u8>, x: &i16| o
                    .extend_from_slice(&x.to_le_bytes())),
                Array::U32(v) => each!(4, v, |o: &mut Vec<u8>, x: &u32| o
                    .extend_from_slice(&x.to_le_bytes())),
                Array::I32(v) => each!(5, v, |o: &mut Vec<u8>, x: &i32| o
                    .extend_from_slice(&x.to_le_bytes())),
                Array::F32(v) => each!(6, v, |o: &mut Vec<u8>, x: &f32| o
                    .extend_from_slice(&x.to_le_bytes())),
                Array::Bool(v) => each!(7, v, |o: &mut Vec<u8>, x: &bool| o.push(*x as u8)),
                Array::Str(v) => each!(8, v, |o: &mut Vec<u8>, x: &String| put_str(o, x)),
                Array::Array(v) => each!(9, v, |o: &mut Vec<u8>, x: &Array| put_array(o, x)),
                Array::U64(v) => each!(10, v, |o: &mut Vec<u8>, x: &u64| o
                    .extend_from_slice(&x.to_le_bytes())),
                Array::I64(v) => each!(11, v, |o: &mut Vec<u8>, x: &i64| o
                    .extend_from_slice(&x.to_le_bytes())),
                Array::F64(v) => each!(12, v, |o: &mut Vec<u8>, x: &f64| o
                    .extend_from_slice(&x.to_le_bytes())),
                Array::Skipped { ty, .. } => {
                    // Its elements were not kept: written as an empty array of its type.
                    out.extend_from_slice(&ty.to_le_bytes());
                    out.extend_from_slice(&0u64.to_le_bytes());
                }
            }
        }
        fn put_value(out: &mut Vec<u8>, v: &Value) {
            let (ty, body): (u32, Vec<u8>) = match v {
                Value::U8(x) => (0, vec![*x]),
                Value::I8(x) => (1, vec![*x as u8]),
                Value::U16(x) => (2, x.to_le_bytes().to_vec()),
                Value::I16(x) => (3, x.to_le_bytes().to_vec()),
                Value::U32(x) => (4, x.to_le_bytes().to_vec()),
                Value::I32(x) => (5, x.to_le_bytes().to_vec()),
                Value::F32(x) => (6, x.to_le_bytes().to_vec()),
                Value::Bool(x) => (7, vec![*x as u8]),
                Value::Str(s) => {
                    let mut b = Vec::new();
                    put_str(&mut b, s);
                    (8, b)
                }
                Value::Array(a) => {
                    let mut b = Vec::new();
                    put_array(&mut b, a);
                    (9, b)
                }
                Value::U64(x) => (10, x.to_le_bytes().to_vec()),
                Value::I64(x) => (11, x.to_le_bytes().to_vec()),
                Value::F64(x) => (12, x.to_le_bytes().to_vec()),
            };
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&body);
        }
        let mut kv: Vec<(String, Value)> = metadata.to_vec();
        if alignment != DEFAULT_ALIGNMENT && get(&kv, "general.alignment").is_none() {
            kv.push(("general.alignment".into(), Value::U32(alignment as u32)));
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(kv.len() as u64).to_le_bytes());
        for (k, v) in &kv {
            put_str(&mut out, k);
            put_value(&mut out, v);
        }
        let mut offset = 0u64;
        for (name, ty, ne, data) in tensors {
            put_str(&mut out, name);
            out.extend_from_slice(&(ne.len() as u32).to_le_bytes());
            for d in ne {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + data.len() as u64).next_multiple_of(alignment);
        }
        let pad = |out: &mut Vec<u8>| {
            while !(out.len() as u64).is_multiple_of(alignment) {
                out.push(0);
            }
        };
        pad(&mut out);
        for (_, _, _, data) in tensors {
            out.extend_from_slice(data);
            pad(&mut out);
        }
        out
    }
}

/// Builds archives for tests: stored (or marked-compressed) entries, optionally with zip64 records.
pub mod zip {
    /// One entry to write: name, bytes, compression method to declare, local extra-field padding.
    pub struct Item<'a> {
        /// Entry name.
        pub name: &'a str,
        /// Entry bytes.
        pub data: &'a [u8],
        /// Compression method to declare (0: stored).
        pub method: u16,
        /// Bytes of local extra field to pad with.
        pub pad: usize,
    }

    /// Stored entries named `name` holding `data`.
    pub fn stored<'a>(items: &[(&'a str, &'a [u8])]) -> Vec<u8> {
        stored_as(items, false)
    }

    /// [`stored`], with every size and offset in zip64 records when `zip64` is set.
    pub fn stored_as<'a>(items: &[(&'a str, &'a [u8])], zip64: bool) -> Vec<u8> {
        let items: Vec<Item> = items
            .iter()
            .map(|&(name, data)| Item {
                name,
                data,
                method: 0,
                pad: 0,
            })
            .collect();
        archive(&items, zip64)
    }

    /// The archive's bytes; with `zip64`, every size and offset goes through zip64 records.
    pub fn archive(items: &[Item], zip64: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for it in items {
            let offset = out.len() as u64;
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&it.method.to_le_bytes());
            out.extend_from_slice(&[0; 8]); // time, date, crc
            out.extend_from_slice(&[0; 8]); // sizes: left to the central directory
            out.extend_from_slice(&(it.name.len() as u16).to_le_bytes());
            let pad = if it.pad > 0 { it.pad.max(4) } else { 0 };
            out.extend_from_slice(&(pad as u16).to_le_bytes());
            out.extend_from_slice(it.name.as_bytes());
            if pad > 0 {
                out.extend_from_slice(b"FB");
                out.extend_from_slice(&((pad - 4) as u16).to_le_bytes());
                out.extend(std::iter::repeat_n(b'Z', pad - 4));
            }
            out.extend_from_slice(it.data);
            let len = it.data.len() as u64;
            central.extend_from_slice(b"PK\x01\x02");
            central.extend_from_slice(&45u16.to_le_bytes());
            central.extend_from_slice(&45u16.to_le_bytes());
            central.extend_from_slice(&0u16.to_le_bytes());
            central.extend_from_slice(&it.method.to_le_bytes());
            central.extend_from_slice(&[0; 8]);
            let (size32, off32) = if zip64 {
                (u32::MAX, u32::MAX)
            } else {
                (len as u32, offset as u32)
            };
            central.extend_from_slice(&size32.to_le_bytes());
            central.extend_from_slice(&size32.to_le_bytes());
            central.extend_from_slice(&(it.name.len() as u16).to_le_bytes());
            central.extend_from_slice(&(if zip64 { 28u16 } else { 0 }).to_le_bytes());
            central.extend_from_slice(&[0; 10]); // comment length, disk, attributes
            central.extend_from_slice(&off32.to_le_bytes());
            central.extend_from_slice(it.name.as_bytes());
            if zip64 {
                central.extend_from_slice(&1u16.to_le_bytes());
                central.extend_from_slice(&24u16.to_le_bytes());
                central.extend_from_slice(&len.to_le_bytes());
                central.extend_from_slice(&len.to_le_bytes());
                central.extend_from_slice(&offset.to_le_bytes());
            }
        }
        let cd_offset = out.len() as u64;
        out.extend_from_slice(&central);
        let cd_size = central.len() as u64;
        let n = items.len() as u64;
        if zip64 {
            let rec = out.len() as u64;
            out.extend_from_slice(b"PK\x06\x06");
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&cd_size.to_le_bytes());
            out.extend_from_slice(&cd_offset.to_le_bytes());
            out.extend_from_slice(b"PK\x06\x07");
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&rec.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0; 4]);
        let n16 = if zip64 { u16::MAX } else { n as u16 };
        out.extend_from_slice(&n16.to_le_bytes());
        out.extend_from_slice(&n16.to_le_bytes());
        let (s32, o32) = if zip64 {
            (u32::MAX, u32::MAX)
        } else {
            (cd_size as u32, cd_offset as u32)
        };
        out.extend_from_slice(&s32.to_le_bytes());
        out.extend_from_slice(&o32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }
}

/// Pickle bytes for tests, written opcode by opcode as `pickle` and `torch.save` do.
pub mod pickle {
    /// Protocol 2 header.
    pub const PROTO2: &[u8] = b"\x80\x02";

    /// `BINUNICODE s`.
    pub fn s(text: &str) -> Vec<u8> {
        let mut out = vec![b'X'];
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out
    }

    /// `SHORT_BINUNICODE s`.
    pub fn short(text: &str) -> Vec<u8> {
        let mut out = vec![0x8c, text.len() as u8];
        out.extend_from_slice(text.as_bytes());
        out
    }

    /// `GLOBAL module name`.
    pub fn global(module: &str, name: &str) -> Vec<u8> {
        format!("c{module}\n{name}\n").into_bytes()
    }

    /// A small non-negative integer (`BININT1`, `BININT2` or `BININT`).
    pub fn int(v: u32) -> Vec<u8> {
        if v < 256 {
            vec![b'K', v as u8]
        } else if v < 65536 {
            let mut o = vec![b'M'];
            o.extend_from_slice(&(v as u16).to_le_bytes());
            o
        } else {
            let mut o = vec![b'J'];
            o.extend_from_slice(&(v as i32).to_le_bytes());
            o
        }
    }

    /// A tuple of small integers (`MARK … TUPLE`).
    pub fn ints(v: &[u32]) -> Vec<u8> {
        let mut o = vec![b'('];
        for &x in v {
            o.extend(int(x));
        }
        o.push(b't');
        o
    }

    /// `_rebuild_tensor_v2(storage(key, class, numel), offset, size, stride, False, OrderedDict())`.
    pub fn tensor(
        class: &str,
        key: &str,
        numel: u32,
        offset: u32,
        size: &[u32],
        stride: &[u32],
    ) -> Vec<u8> {
        let mut o = global("torch._utils", "_rebuild_tensor_v2");
        o.push(b'(');
        o.push(b'(');
        o.extend(s("storage"));
        o.extend(global("torch", class));
        o.extend(s(key));
        o.extend(s("cpu"));
        o.extend(int(numel));
        o.extend_from_slice(b"tQ");
        o.extend(int(offset));
        o.extend(ints(size));
        o.extend(ints(stride));
        o.push(0x89);
        o.extend(global("collections", "OrderedDict"));
        o.extend_from_slice(b")R");
        o.extend_from_slice(b"tR");
        o
    }

    /// A state dict: `OrderedDict()` with `(name, value pickle)` items set by SETITEMS, then STOP.
    pub fn state_dict(items: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut o = PROTO2.to_vec();
        o.extend(global("collections", "OrderedDict"));
        o.extend_from_slice(b")R(");
        for (k, v) in items {
            o.extend(s(k));
            o.extend_from_slice(v);
        }
        o.extend_from_slice(b"u.");
        o
    }
}
