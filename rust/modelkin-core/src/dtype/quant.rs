//! ggml's block-quantised formats: block layouts and their dequantisation to floats.
//!
//! Each function follows ggml's reference `dequantize_row_*` (`ggml-quants.c`) operation for
//! operation, in `f32` with the same order of rounding (a product, then a sum, never fused), so the
//! values are bit-for-bit those llama.cpp computes; they are then widened to `f64` exactly. Block
//! bytes are read with `from_le_bytes` (GGUF data need not be aligned for the element types).
//!
//! | format | elements | bytes | layout |
//! |---|---|---|---|
//! | Q4_0 | 32 | 18 | `d: f16, qs: [u8; 16]` |
//! | Q4_1 | 32 | 20 | `d: f16, m: f16, qs: [u8; 16]` |
//! | Q5_0 | 32 | 22 | `d: f16, qh: [u8; 4], qs: [u8; 16]` |
//! | Q5_1 | 32 | 24 | `d: f16, m: f16, qh: [u8; 4], qs: [u8; 16]` |
//! | Q8_0 | 32 | 34 | `d: f16, qs: [i8; 32]` |
//! | Q2_K | 256 | 84 | `scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16` |
//! | Q3_K | 256 | 110 | `hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16` |
//! | Q4_K | 256 | 144 | `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]` |
//! | Q5_K | 256 | 176 | `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]` |
//! | Q6_K | 256 | 210 | `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` |
//! | Q8_K | 256 | 292 | `d: f32, qs: [i8; 256], bsums: [i16; 16]` |

use half::f16;

/// Elements of a K-quant super-block (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// One function per format: `$name(bytes, out)` dequantises whole blocks (`out.len()` is a whole
/// number of blocks and `bytes` holds exactly those blocks; a mismatch is a programming error). The
/// dispatch on the dtype is [`super::decode_into`]'s, so this module does not name the dtypes.
macro_rules! whole_blocks {
    ($($name:ident = $block:ident, $n:expr, $s:expr;)*) => {$(
        #[doc = concat!("Dequantises whole `", stringify!($block), "` blocks into `out`.")]
        pub fn $name(bytes: &[u8], out: &mut [f64]) {
            run::<$n, $s>(bytes, out, $block)
        }
    )*};
}

whole_blocks! {
    q4_0_blocks = q4_0, 32, 18;
    q4_1_blocks = q4_1, 32, 20;
    q5_0_blocks = q5_0, 32, 22;
    q5_1_blocks = q5_1, 32, 24;
    q8_0_blocks = q8_0, 32, 34;
    q2_k_blocks = q2_k, QK_K, 84;
    q3_k_blocks = q3_k, QK_K, 110;
    q4_k_blocks = q4_k, QK_K, 144;
    q5_k_blocks = q5_k, QK_K, 176;
    q6_k_blocks = q6_k, QK_K, 210;
    q8_k_blocks = q8_k, QK_K, 292;
}

/// Decodes block after block through an `f32` stage and widens it.
#[inline(always)]
fn run<const N: usize, const S: usize>(
    bytes: &[u8],
    out: &mut [f64],
    block: fn(&[u8; S], &mut [f32; N]),
) {
    let mut stage = [0.0f32; N];
    for (b, o) in bytes
        .as_chunks::<S>()
        .0
        .iter()
        .zip(out.as_chunks_mut::<N>().0)
    {
        block(b, &mut stage);
        for (x, &v) in o.iter_mut().zip(&stage) {
            *x = v as f64;
        }
    }
}

#[inline(always)]
fn half(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

fn q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = half(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        let x0 = (qs[j] & 0x0f) as i32 - 8;
        let x1 = (qs[j] >> 4) as i32 - 8;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

fn q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let (d, m) = (half(b, 0), half(b, 2));
    let qs = &b[4..20];
    for j in 0..16 {
        let x0 = (qs[j] & 0x0f) as i32;
        let x1 = (qs[j] >> 4) as i32;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

fn q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = half(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let xh_0 = ((qh >> j) << 4) & 0x10;
        let xh_1 = (qh >> (j + 12)) & 0x10;
        let x0 = ((qs[j] & 0x0f) as u32 | xh_0) as i32 - 16;
        let x1 = ((qs[j] >> 4) as u32 | xh_1) as i32 - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

fn q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let (d, m) = (half(b, 0), half(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let xh_0 = ((qh >> j) << 4) & 0x10;
        let xh_1 = (qh >> (j + 12)) & 0x10;
        let x0 = ((qs[j] & 0x0f) as u32 | xh_0) as i32;
        let x1 = ((qs[j] >> 4) as u32 | xh_1) as i32;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

fn q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = half(b, 0);
    for (o, &q) in y.iter_mut().zip(&b[2..34]) {
        *o = (q as i8) as f32 * d;
    }
}

fn q2_k(b: &[u8; 84], y: &mut [f32; QK_K]) {
    let scales = &b[0..16];
    let d = half(b, 80);
    let min = half(b, 82);
    let mut out = 0;
    let mut is = 0;
    for n in 0..2 {
        let q = &b[16 + 32 * n..16 + 32 * (n + 1)];
        for shift in [0u32, 2, 4, 6] {
            for half_block in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0x0f) as f32;
                let ml = min * (sc >> 4) as f32;
                for &ql in &q[16 * half_block..16 * half_block + 16] {
                    y[out] = dl * ((ql >> shift) & 3) as f32 - ml;
                    out += 1;
                }
            }
        }
    }
}

/// The sixteen 6-bit scales of a Q3_K block, unpacked as ggml does (each still offset by 32).
fn q3_k_scales(packed: &[u8]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let word = |i: usize| {
        u32::from_le_bytes([
            packed[4 * i],
            packed[4 * i + 1],
            packed[4 * i + 2],
            packed[4 * i + 3],
        ])
    };
    let (a0, a1, tmp) = (word(0), word(1), word(2));
    let aux = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0i8; 16];
    for (k, w) in aux.iter().enumerate() {
        for (i, byte) in w.to_le_bytes().into_iter().enumerate() {
            out[4 * k + i] = byte as i8;
        }
    }
    out
}

fn q3_k(b: &[u8; 110], y: &mut [f32; QK_K]) {
    let hm = &b[0..32];
    let scales = q3_k_scales(&b[96..108]);
    let d_all = half(b, 108);
    let mut m = 1u8;
    let mut out = 0;
    let mut is = 0;
    for n in 0..2 {
        let q = &b[32 + 32 * n..32 + 32 * (n + 1)];
        for shift in [0u32, 2, 4, 6] {
            for half_block in 0..2 {
                let dl = d_all * (scales[is] as i32 - 32) as f32;
                is += 1;
                for l in 16 * half_block..16 * half_block + 16 {
                    let low = ((q[l] >> shift) & 3) as i32;
                    let high = if hm[l] & m != 0 { 0 } else { 4 };
                    y[out] = dl * (low - high) as f32;
                    out += 1;
                }
            }
            m = m.wrapping_shl(1);
        }
    }
}

/// Scale and minimum of sub-block `j` of a Q4_K/Q5_K block (ggml's `get_scale_min_k4`).
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

fn q4_k(b: &[u8; 144], y: &mut [f32; QK_K]) {
    let d = half(b, 0);
    let min = half(b, 2);
    let scales = &b[4..16];
    let mut out = 0;
    for (chunk, q) in b[16..144].chunks_exact(32).enumerate() {
        let (sc, m) = scale_min_k4(2 * chunk, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(2 * chunk + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        for &ql in q {
            y[out] = d1 * (ql & 0x0f) as f32 - m1;
            out += 1;
        }
        for &ql in q {
            y[out] = d2 * (ql >> 4) as f32 - m2;
            out += 1;
        }
    }
}

fn q5_k(b: &[u8; 176], y: &mut [f32; QK_K]) {
    let d = half(b, 0);
    let min = half(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let (mut u1, mut u2) = (1u8, 2u8);
    let mut out = 0;
    for (chunk, ql) in b[48..176].chunks_exact(32).enumerate() {
        let (sc, m) = scale_min_k4(2 * chunk, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(2 * chunk + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        for l in 0..32 {
            let high = if qh[l] & u1 != 0 { 16 } else { 0 };
            y[out] = d1 * ((ql[l] & 0x0f) as i32 + high) as f32 - m1;
            out += 1;
        }
        for l in 0..32 {
            let high = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[out] = d2 * ((ql[l] >> 4) as i32 + high) as f32 - m2;
            out += 1;
        }
        u1 = u1.wrapping_shl(2);
        u2 = u2.wrapping_shl(2);
    }
}

fn q6_k(b: &[u8; 210], y: &mut [f32; QK_K]) {
    let d = half(b, 208);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        let y = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

fn q8_k(b: &[u8; 292], y: &mut [f32; QK_K]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (o, &q) in y.iter_mut().zip(&b[4..4 + QK_K]) {
        *o = d * (q as i8) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Through the dtype's decoder, which dispatches to this module's functions.
    use crate::dtype::DType;

    fn dq(dtype: DType, bytes: &[u8]) -> Vec<f64> {
        let mut out = vec![f64::NAN; dtype.numel(bytes.len() as u64) as usize];
        crate::dtype::decode_into(dtype, bytes, &mut out);
        out
    }

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q8_0_is_scale_times_code() {
        let mut b = h(0.5).to_vec();
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let want: Vec<f64> = (0..32).map(|i| (i as f64 - 16.0) * 0.5).collect();
        assert_eq!(dq(DType::Q8_0, &b), want);
    }

    #[test]
    fn q4_0_and_q4_1_split_low_and_high_nibbles() {
        // Low nibble j feeds element j, high nibble element j + 16.
        let mut b = h(2.0).to_vec();
        b.extend((0..16).map(|j| (j as u8) | (15 - j as u8) << 4));
        let got = dq(DType::Q4_0, &b);
        for j in 0..16 {
            assert_eq!(got[j], (j as f64 - 8.0) * 2.0);
            assert_eq!(got[j + 16], (7.0 - j as f64) * 2.0);
        }
        let mut b1 = h(0.25).to_vec();
        b1.extend(h(-1.0));
        b1.extend((0..16).map(|j| (j as u8) | (3u8 << 4)));
        let got = dq(DType::Q4_1, &b1);
        assert_eq!(got[5], 5.0 * 0.25 - 1.0);
        assert_eq!(got[21], 3.0 * 0.25 - 1.0);
    }

    #[test]
    fn q5_high_bits_come_from_qh() {
        // Element j's fifth bit is bit j of qh (j < 16), element j + 16's is bit j + 16.
        let qh: u32 = (1 << 3) | (1 << 20);
        let mut b = h(1.0).to_vec();
        b.extend(qh.to_le_bytes());
        b.extend([0u8; 16]);
        let got = dq(DType::Q5_0, &b);
        for (i, g) in got.iter().enumerate() {
            let want = if i == 3 || i == 20 { 0.0 } else { -16.0 };
            assert_eq!(*g, want, "element {i}");
        }
        let mut b1 = h(1.0).to_vec();
        b1.extend(h(0.5));
        b1.extend(qh.to_le_bytes());
        b1.extend([0x21u8; 16]);
        let got = dq(DType::Q5_1, &b1);
        assert_eq!(got[3], 17.5);
        assert_eq!(got[4], 1.5);
        assert_eq!(got[20], 18.5);
        assert_eq!(got[21], 2.5);
    }

    #[test]
    fn k_quants_decode_known_blocks() {
        // Q4_K: d = 1, dmin = 1, sub-block scales 1..8 (6-bit packing), minima 0, every code 3
        // (low) and 5 (high): element i of sub-block s is (s + 1) · code.
        let mut scales = [0u8; 12];
        scales[..4].copy_from_slice(&[1, 2, 3, 4]);
        scales[8..].copy_from_slice(&[5, 6, 7, 8]);
        let mut b = h(1.0).to_vec();
        b.extend(h(1.0));
        b.extend(scales);
        b.extend([0x53u8; 128]);
        let got = dq(DType::Q4_K, &b);
        for (i, g) in got.iter().enumerate() {
            let s = i / 32;
            let code = if s % 2 == 0 { 3.0 } else { 5.0 };
            assert_eq!(*g, (s as f64 + 1.0) * code, "element {i}");
        }
        // Q8_K: an f32 scale and signed codes; the block sums are ignored.
        let mut b = 0.125f32.to_le_bytes().to_vec();
        b.extend((0..256).map(|i| (i as u8).wrapping_sub(128)));
        b.extend([0xffu8; 32]);
        let got = dq(DType::Q8_K, &b);
        assert_eq!(got[0], -16.0);
        assert_eq!(got[255], 127.0 * 0.125);
        // Q6_K: code 0 (−32 after the offset) with scale −1 decodes to 32 · d.
        let mut b = vec![0u8; 210];
        b[192..208].fill(0xff); // scales −1
        b[208..210].copy_from_slice(&h(0.5));
        assert!(dq(DType::Q6_K, &b).iter().all(|&v| v == 16.0));
        // Q3_K: scales all 32 + 1 (so 1 after the offset), low bits 0, high mask bit clear: −4 · d.
        let mut b = vec![0u8; 110];
        let mut packed = [0u8; 12];
        packed[..8].fill(0x11); // low nibbles 1
        packed[8..].fill(0xaa); // high pairs 0b10 → +32
        b[96..108].copy_from_slice(&packed);
        b[108..110].copy_from_slice(&h(0.25));
        assert!(dq(DType::Q3_K, &b).iter().all(|&v| v == -1.0));
        // Q2_K: scale nibble 2, min nibble 1, d = 0.5, dmin = 0.25, codes 3: 0.5·2·3 − 0.25.
        let mut b = vec![0x12u8; 16];
        b.extend([0xffu8; 64]);
        b.extend(h(0.5));
        b.extend(h(0.25));
        assert!(dq(DType::Q2_K, &b).iter().all(|&v| v == 2.75));
        // Q5_K: like Q4_K with the fifth bit from qh.
        let mut b = h(1.0).to_vec();
        b.extend(h(0.0));
        let mut scales = [0u8; 12];
        scales[..4].fill(1);
        scales[8..].fill(1);
        b.extend(scales);
        b.extend([0x01u8; 32]); // bit 0: the first sub-block of every element gets +16
        b.extend([0x00u8; 128]);
        let got = dq(DType::Q5_K, &b);
        assert!(got[..32].iter().all(|&v| v == 16.0));
        assert!(got[32..].iter().all(|&v| v == 0.0));
    }
}
