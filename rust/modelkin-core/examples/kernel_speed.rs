//! Times the block kernels and decoders on in-cache data, to see what the hot path costs without
//! any I/O: `cargo run --release --example kernel_speed -p modelkin-core [-- NAME]`.

use std::hint::black_box;
use std::time::Instant;

use modelkin_core::dtype::{decode_f32, decode_into, DType};
use modelkin_core::engine::BLOCK;
use modelkin_core::kernel::{
    add_columns_f32, pair_block, pair_block_f32, single_block, single_block_f32,
};

fn rate(name: &str, reps: usize, mut f: impl FnMut()) {
    // `kernel_speed TEXT` times only the kernels whose names contain TEXT (for a profiler).
    if let Some(only) = std::env::args().nth(1) {
        if !name.contains(&only) {
            return;
        }
    }
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    let per_s = (reps * BLOCK) as f64 / t.elapsed().as_secs_f64();
    println!("{name:<24} {:>8.0} M elements/s", per_s / 1e6);
}

fn main() {
    let reps = 20_000;
    let a32: Vec<f32> = (0..BLOCK)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-4)
        .collect();
    let b32: Vec<f32> = a32
        .iter()
        .enumerate()
        .map(|(i, x)| x + (i % 7) as f32 * 1e-5)
        .collect();
    let a64: Vec<f64> = a32.iter().map(|&x| x as f64).collect();
    let b64: Vec<f64> = b32.iter().map(|&x| x as f64).collect();
    rate("pair f64", reps, || {
        black_box(pair_block(black_box(&a64), black_box(&b64)));
    });
    rate("single f64", reps, || {
        black_box(single_block(black_box(&a64)));
    });
    rate("pair f32", reps, || {
        black_box(pair_block_f32(black_box(&a32), black_box(&b32)));
    });
    rate("single f32", reps, || {
        black_box(single_block_f32(black_box(&a32)));
    });
    for row_len in [1024, 5632] {
        let mut cols = vec![0.0f32; row_len];
        rate(&format!("margins f32, rows {row_len}"), reps, || {
            for x in a32.chunks(row_len) {
                let n = x.len();
                black_box(add_columns_f32(&mut cols[..n], black_box(x)));
            }
        });
    }
    let raw: Vec<u8> = (0..8 * BLOCK).map(|i| (i * 31 % 251) as u8).collect();
    let mut wide = vec![0.0f64; BLOCK];
    let mut narrow = vec![0.0f32; BLOCK];
    for d in [DType::BF16, DType::F16, DType::F8_E4M3] {
        let bytes = &raw[..BLOCK * d.size()];
        rate(&format!("decode {d} -> f32"), reps, || {
            decode_f32(d, black_box(bytes), &mut narrow)
        });
    }
    for d in [
        DType::BF16,
        DType::F16,
        DType::F8_E4M3,
        DType::F32,
        DType::Q8_0,
        DType::Q4_K,
    ] {
        let bytes = &raw[..d.nbytes(BLOCK as u64).unwrap_or(0) as usize];
        rate(&format!("decode {d} -> f64"), reps, || {
            decode_into(d, black_box(bytes), &mut wide)
        });
    }
}
