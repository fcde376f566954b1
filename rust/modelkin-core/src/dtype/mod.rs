//! Element types of checkpoint tensors and their decoding to `f64`.
//!
//! Bytes come from files written by others, at offsets that need not be aligned, so every element is
//! read with `from_le_bytes` over `chunks_exact`; no pointer casts.
//!
//! Besides the element types of safetensors, a dtype can be one of ggml's block-quantised formats
//! (GGUF files): a block of [`DType::block_len`] elements is stored in [`DType::size`] bytes and is
//! decoded whole (see [`quant`]). Safetensors headers cannot name those: [`DType::parse`]
//! knows only the safetensors names.

pub mod quant;

use half::f16;
use half::slice::HalfFloatSliceExt;

/// A tensor element type, as named in safetensors headers, or a ggml block-quantised format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum DType {
    /// IEEE binary64.
    F64,
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16 (the top half of a binary32).
    BF16,
    /// 8-bit float, 4 exponent bits, 3 mantissa bits, no infinities (OCP "E4M3FN").
    F8_E4M3,
    /// 8-bit float, 5 exponent bits, 2 mantissa bits (OCP "E5M2").
    F8_E5M2,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 64-bit integer.
    U64,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 8-bit integer.
    U8,
    /// Boolean stored as one byte (any non-zero byte reads as 1).
    BOOL,
    /// ggml Q4_0: blocks of 32 elements in 18 bytes (an f16 scale, 4-bit codes offset by 8).
    Q4_0,
    /// ggml Q4_1: blocks of 32 elements in 20 bytes (f16 scale and minimum, 4-bit codes).
    Q4_1,
    /// ggml Q5_0: blocks of 32 elements in 22 bytes (f16 scale, 5-bit codes offset by 16).
    Q5_0,
    /// ggml Q5_1: blocks of 32 elements in 24 bytes (f16 scale and minimum, 5-bit codes).
    Q5_1,
    /// ggml Q8_0: blocks of 32 elements in 34 bytes (an f16 scale, signed 8-bit codes).
    Q8_0,
    /// ggml Q2_K: super-blocks of 256 elements in 84 bytes (2-bit codes, 4-bit sub-block scales).
    Q2_K,
    /// ggml Q3_K: super-blocks of 256 elements in 110 bytes (3-bit codes, 6-bit sub-block scales).
    Q3_K,
    /// ggml Q4_K: super-blocks of 256 elements in 144 bytes (4-bit codes, 6-bit scales and minima).
    Q4_K,
    /// ggml Q5_K: super-blocks of 256 elements in 176 bytes (5-bit codes, 6-bit scales and minima).
    Q5_K,
    /// ggml Q6_K: super-blocks of 256 elements in 210 bytes (6-bit codes, 8-bit sub-block scales).
    Q6_K,
    /// ggml Q8_K: super-blocks of 256 elements in 292 bytes (an f32 scale, signed 8-bit codes).
    Q8_K,
}

impl DType {
    /// Every supported dtype.
    pub const ALL: [DType; 15] = [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F8_E4M3,
        DType::F8_E5M2,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U64,
        DType::U32,
        DType::U16,
        DType::U8,
        DType::BOOL,
    ];

    /// The ggml block-quantised formats modelkin decodes (GGUF files only).
    pub const QUANTIZED: [DType; 11] = [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q2_K,
        DType::Q3_K,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
        DType::Q8_K,
    ];

    /// Parses a safetensors dtype name; `None` when unknown. Only the safetensors names in
    /// [`DType::ALL`] parse: a header cannot name a block-quantised format.
    pub fn parse(name: &str) -> Option<DType> {
        DType::ALL.iter().copied().find(|d| d.name() == name)
    }

    /// The safetensors name of the dtype.
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F8_E4M3 => "F8_E4M3",
            DType::F8_E5M2 => "F8_E5M2",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U64 => "U64",
            DType::U32 => "U32",
            DType::U16 => "U16",
            DType::U8 => "U8",
            DType::BOOL => "BOOL",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q5_0 => "Q5_0",
            DType::Q5_1 => "Q5_1",
            DType::Q8_0 => "Q8_0",
            DType::Q2_K => "Q2_K",
            DType::Q3_K => "Q3_K",
            DType::Q4_K => "Q4_K",
            DType::Q5_K => "Q5_K",
            DType::Q6_K => "Q6_K",
            DType::Q8_K => "Q8_K",
        }
    }

    /// Bytes per block: per element for the element types, per block of [`DType::block_len`]
    /// elements for the block-quantised formats.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F8_E4M3 | DType::F8_E5M2 | DType::I8 | DType::U8 | DType::BOOL => 1,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q5_0 => 22,
            DType::Q5_1 => 24,
            DType::Q8_0 => 34,
            DType::Q2_K => 84,
            DType::Q3_K => 110,
            DType::Q4_K => 144,
            DType::Q5_K => 176,
            DType::Q6_K => 210,
            DType::Q8_K => 292,
        }
    }

    /// Elements per block: 1 for the element types, 32 or 256 for the block-quantised formats,
    /// which are only ever decoded a whole block at a time.
    pub fn block_len(self) -> usize {
        match self {
            DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 | DType::Q8_0 => 32,
            DType::Q2_K | DType::Q3_K | DType::Q4_K | DType::Q5_K | DType::Q6_K | DType::Q8_K => {
                256
            }
            _ => 1,
        }
    }

    /// Whether the dtype is a block-quantised format (see [`DType::QUANTIZED`]).
    pub fn is_quantized(self) -> bool {
        self.block_len() > 1
    }

    /// Bytes that `numel` elements occupy; `None` when `numel` is not a whole number of blocks or
    /// the size does not fit in 64 bits.
    pub fn nbytes(self, numel: u64) -> Option<u64> {
        let block = self.block_len() as u64;
        if !numel.is_multiple_of(block) {
            return None;
        }
        (numel / block).checked_mul(self.size() as u64)
    }

    /// Elements held by `nbytes` bytes (whole blocks; a partial block is not counted).
    pub fn numel(self, nbytes: u64) -> u64 {
        nbytes / self.size() as u64 * self.block_len() as u64
    }

    /// Whether `f32` holds every value of the dtype exactly (so decoding goes through `f32`).
    pub fn fits_f32(self) -> bool {
        matches!(
            self,
            DType::F16
                | DType::BF16
                | DType::F8_E4M3
                | DType::F8_E5M2
                | DType::I16
                | DType::I8
                | DType::U16
                | DType::U8
                | DType::BOOL
        )
    }

    /// Whether the dtype is a floating-point type (and so may hold NaN or infinities); the
    /// block-quantised formats decode to floats through floating-point scales, so they are too.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::F64 | DType::F32 | DType::F16 | DType::BF16 | DType::F8_E4M3 | DType::F8_E5M2
        ) || self.is_quantized()
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Decodes one OCP E4M3FN byte: bias 7, subnormals, NaN at S.1111.111, no infinities.
const fn e4m3_to_f32(byte: u8) -> f32 {
    let sign = if byte & 0x80 != 0 { -1.0f32 } else { 1.0f32 };
    let exp = ((byte >> 3) & 0x0f) as i32;
    let man = (byte & 0x07) as f32;
    if exp == 0x0f && (byte & 0x07) == 0x07 {
        // Keep the sign so that the two NaN codes stay distinct (bit-equality counts rely on it).
        return f32::from_bits(if byte & 0x80 != 0 {
            0xffc0_0000
        } else {
            0x7fc0_0000
        });
    }
    if exp == 0 {
        // Subnormal: man/8 * 2^(1-7).
        return sign * man * (1.0 / 512.0);
    }
    let mut scale = 1.0f32;
    let mut e = exp - 7;
    while e > 0 {
        scale *= 2.0;
        e -= 1;
    }
    while e < 0 {
        scale *= 0.5;
        e += 1;
    }
    sign * (1.0 + man / 8.0) * scale
}

const fn e4m3_table() -> [f32; 256] {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = e4m3_to_f32(i as u8);
        i += 1;
    }
    t
}

static E4M3: [f32; 256] = e4m3_table();

/// Elements decoded per call of the inner conversion loops (fits the stack comfortably).
const STAGE: usize = 512;

/// Calls `$generic($args)` through a copy compiled for AVX-512F or AVX2 when the CPU has it (picked
/// at run time, so the wheel stays portable), else the portable build.
macro_rules! simd_copies {
    ($generic:ident($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn wide512($($arg: $ty),*) {
                $generic($($arg),*)
            }
            #[target_feature(enable = "avx2")]
            fn wide256($($arg: $ty),*) {
                $generic($($arg),*)
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above.
                return unsafe { wide512($($arg),*) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                return unsafe { wide256($($arg),*) };
            }
        }
        $generic($($arg),*)
    }};
}

/// Decodes `bytes` (exactly `out.len()` elements of `dtype`, little-endian) into `out`.
///
/// For a block-quantised dtype `out.len()` is a whole number of blocks. Lengths come from
/// validated headers; a mismatch is a programming error (debug assertion). On
/// x86-64 an AVX-512 or AVX2 copy is picked at run time: decoding streams every byte of both
/// checkpoints, so it is as hot as the statistics.
pub fn decode_into(dtype: DType, bytes: &[u8], out: &mut [f64]) {
    simd_copies!(decode_generic(dtype: DType, bytes: &[u8], out: &mut [f64]))
}

#[inline(always)]
fn decode_generic(dtype: DType, bytes: &[u8], out: &mut [f64]) {
    debug_assert_eq!(Some(bytes.len() as u64), dtype.nbytes(out.len() as u64));
    macro_rules! le {
        ($t:ty, $n:expr) => {
            for (o, c) in out.iter_mut().zip(bytes.as_chunks::<$n>().0) {
                *o = <$t>::from_le_bytes(*c) as f64;
            }
        };
    }
    match dtype {
        DType::F64 => le!(f64, 8),
        DType::F32 => le!(f32, 4),
        DType::I64 => le!(i64, 8),
        DType::I32 => le!(i32, 4),
        DType::U64 => le!(u64, 8),
        DType::U32 => le!(u32, 4),
        DType::BF16 => {
            // bf16 is the high half of an f32: a shift, which the compiler vectorises.
            for (o, c) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                *o = f32::from_bits((u16::from_le_bytes(*c) as u32) << 16) as f64;
            }
        }
        _ if dtype.is_quantized() => dequantize(dtype, bytes, out),
        _ => {
            // Other narrow dtypes: through f32, which holds them exactly.
            let mut stage = [0.0f32; STAGE];
            let size = dtype.size();
            for (o, c) in out.chunks_mut(STAGE).zip(bytes.chunks(STAGE * size)) {
                let n = o.len();
                decode_f32(dtype, c, &mut stage[..n]);
                for (x, &w) in o.iter_mut().zip(&stage[..n]) {
                    *x = w as f64;
                }
            }
        }
    }
}

/// Dequantises whole blocks of a block-quantised `dtype` into `out` (`out.len()` is a whole number
/// of blocks and `bytes` holds exactly those blocks; a mismatch is a programming error).
fn dequantize(dtype: DType, bytes: &[u8], out: &mut [f64]) {
    debug_assert!(dtype.is_quantized());
    debug_assert_eq!(Some(bytes.len() as u64), dtype.nbytes(out.len() as u64));
    match dtype {
        DType::Q4_0 => quant::q4_0_blocks(bytes, out),
        DType::Q4_1 => quant::q4_1_blocks(bytes, out),
        DType::Q5_0 => quant::q5_0_blocks(bytes, out),
        DType::Q5_1 => quant::q5_1_blocks(bytes, out),
        DType::Q8_0 => quant::q8_0_blocks(bytes, out),
        DType::Q2_K => quant::q2_k_blocks(bytes, out),
        DType::Q3_K => quant::q3_k_blocks(bytes, out),
        DType::Q4_K => quant::q4_k_blocks(bytes, out),
        DType::Q5_K => quant::q5_k_blocks(bytes, out),
        DType::Q6_K => quant::q6_k_blocks(bytes, out),
        DType::Q8_K => quant::q8_k_blocks(bytes, out),
        // Element types never reach here (see `decode_into`); zeros keep the function total.
        _ => out.fill(0.0),
    }
}

/// Decodes `bytes` of a narrow dtype (see [`DType::fits_f32`]) into `out`, exactly.
///
/// Wide dtypes are a programming error: they are decoded with [`decode_into`].
pub fn decode_f32(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    simd_copies!(decode_f32_generic(dtype: DType, bytes: &[u8], out: &mut [f32]))
}

#[inline(always)]
fn decode_f32_generic(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    debug_assert!(dtype.fits_f32());
    debug_assert_eq!(bytes.len(), out.len() * dtype.size());
    match dtype {
        DType::BF16 => {
            // bf16 is the high half of an f32: a shift, which the compiler vectorises.
            for (o, c) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                *o = f32::from_bits((u16::from_le_bytes(*c) as u32) << 16);
            }
        }
        DType::F16 => {
            // Through `half`'s slice conversion, which uses F16C where the CPU has it.
            let mut raw = [f16::ZERO; STAGE];
            for (o, c) in out.chunks_mut(STAGE).zip(bytes.chunks(STAGE * 2)) {
                let n = o.len();
                for (r, b) in raw[..n].iter_mut().zip(c.chunks_exact(2)) {
                    *r = f16::from_bits(u16::from_le_bytes([b[0], b[1]]));
                }
                raw[..n].convert_to_f32_slice(o);
            }
        }
        DType::F8_E5M2 => {
            // E5M2 is the high byte of an IEEE binary16.
            for (o, &c) in out.iter_mut().zip(bytes) {
                *o = f16::from_bits((c as u16) << 8).to_f32();
            }
        }
        DType::F8_E4M3 => {
            for (o, &c) in out.iter_mut().zip(bytes) {
                *o = E4M3[c as usize];
            }
        }
        DType::I16 => {
            for (o, c) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                *o = i16::from_le_bytes(*c) as f32;
            }
        }
        DType::U16 => {
            for (o, c) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                *o = u16::from_le_bytes(*c) as f32;
            }
        }
        DType::I8 => {
            for (o, &c) in out.iter_mut().zip(bytes) {
                *o = c as i8 as f32;
            }
        }
        DType::U8 => {
            for (o, &c) in out.iter_mut().zip(bytes) {
                *o = c as f32;
            }
        }
        DType::BOOL => {
            for (o, &c) in out.iter_mut().zip(bytes) {
                *o = (c != 0) as u8 as f32;
            }
        }
        DType::F64
        | DType::F32
        | DType::I64
        | DType::I32
        | DType::U64
        | DType::U32
        | DType::Q4_0
        | DType::Q4_1
        | DType::Q5_0
        | DType::Q5_1
        | DType::Q8_0
        | DType::Q2_K
        | DType::Q3_K
        | DType::Q4_K
        | DType::Q5_K
        | DType::Q6_K
        | DType::Q8_K => {
            // Not reachable through the engine, which sends these to `decode_into`; rounding here
            // keeps the function total.
            let mut wide = vec![0.0f64; out.len()];
            decode_into(dtype, bytes, &mut wide);
            for (o, w) in out.iter_mut().zip(wide) {
                *o = w as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::encode;

    fn dec(dtype: DType, bytes: &[u8]) -> Vec<f64> {
        let mut out = vec![0.0; bytes.len() / dtype.size()];
        decode_into(dtype, bytes, &mut out);
        out
    }

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::parse(d.name()), Some(d));
            assert_eq!((d.block_len(), d.is_quantized()), (1, false));
        }
        assert_eq!(DType::parse("F4"), None);
    }

    #[test]
    fn safetensors_names_cannot_name_block_formats() {
        for d in DType::QUANTIZED {
            assert_eq!(DType::parse(d.name()), None, "{d}");
            assert!(d.is_quantized() && !d.fits_f32() && d.is_float());
            assert_eq!(
                d.nbytes(d.block_len() as u64 * 3),
                Some(3 * d.size() as u64)
            );
            assert_eq!(d.nbytes(d.block_len() as u64 + 1), None);
            assert_eq!(d.numel(d.size() as u64 * 2), 2 * d.block_len() as u64);
        }
        assert_eq!(DType::Q8_0.nbytes(u64::MAX / 32 * 32), None);
    }

    #[test]
    fn e4m3_known_codes() {
        assert_eq!(dec(DType::F8_E4M3, &[0x00]), vec![0.0]);
        assert_eq!(dec(DType::F8_E4M3, &[0x38]), vec![1.0]);
        assert_eq!(dec(DType::F8_E4M3, &[0x7e]), vec![448.0]);
        assert_eq!(dec(DType::F8_E4M3, &[0xfe]), vec![-448.0]);
        assert_eq!(dec(DType::F8_E4M3, &[0x01]), vec![2f64.powi(-9)]);
        assert!(dec(DType::F8_E4M3, &[0x7f])[0].is_nan());
    }

    #[test]
    fn e5m2_known_codes() {
        assert_eq!(dec(DType::F8_E5M2, &[0x3c]), vec![1.0]);
        assert_eq!(dec(DType::F8_E5M2, &[0x7b]), vec![57344.0]);
        assert_eq!(dec(DType::F8_E5M2, &[0x7c]), vec![f64::INFINITY]);
        assert!(dec(DType::F8_E5M2, &[0x7d])[0].is_nan());
    }

    #[test]
    fn unaligned_f32_is_read() {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&1.5f32.to_le_bytes());
        bytes.extend_from_slice(&(-2.25f32).to_le_bytes());
        assert_eq!(dec(DType::F32, &bytes[1..]), vec![1.5, -2.25]);
    }

    #[test]
    fn f16_matches_half_for_every_code() {
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|c| c.to_le_bytes()).collect();
        let got = dec(DType::F16, &bytes);
        for (c, g) in (0..=u16::MAX).zip(got) {
            let want = f16::from_bits(c).to_f64();
            assert!(
                want.to_bits() == g.to_bits() || (want.is_nan() && g.is_nan()),
                "{c:#x}"
            );
        }
    }

    #[test]
    fn integers_and_bool() {
        assert_eq!(dec(DType::I8, &[0xff, 0x7f]), vec![-1.0, 127.0]);
        assert_eq!(dec(DType::U8, &[0xff]), vec![255.0]);
        assert_eq!(dec(DType::BOOL, &[0, 1, 7]), vec![0.0, 1.0, 1.0]);
        assert_eq!(dec(DType::I16, &(-300i16).to_le_bytes()), vec![-300.0]);
        assert_eq!(
            dec(DType::U64, &u64::MAX.to_le_bytes()),
            vec![u64::MAX as f64]
        );
    }

    #[test]
    fn encode_round_trips() {
        let vals = [0.0, 1.0, -2.5, 0.375];
        for d in DType::ALL.into_iter().filter(|d| d.is_float()) {
            assert_eq!(dec(d, &encode(d, &vals)), vals.to_vec(), "{d}");
        }
    }
}
