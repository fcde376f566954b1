//! Times the whole streaming pass on two checkpoints, next to the read-only floor, to see where
//! end-to-end time goes: `cargo run --release --example pipeline_speed -p modelkin-core -- A B`.

use std::time::Instant;

use modelkin_core::checkpoint::Checkpoint;
use modelkin_core::ops::{diff, read_pair};
use modelkin_core::{Options, Progress};

fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [a, b] = [&args[0], &args[1]].map(|p| Checkpoint::open(p).expect("open"));
    let reps = 5;
    if let Some(only) = args.get(2) {
        // `A B margins|plain|floor [threads]`: one configuration, for a profiler.
        let opts = Options {
            threads: Some(args.get(3).map_or(1, |t| t.parse().expect("threads"))),
            margins: only == "margins",
            ..Options::default()
        };
        let t = best(reps, || {
            if only == "floor" {
                read_pair(&a, &b, &opts, &Progress::default()).expect("read");
            } else {
                diff(&a, &b, &opts, &Progress::default()).expect("diff");
            }
        });
        println!("{}t {only} {t:.3} s", opts.threads.unwrap_or(1));
        return;
    }
    for threads in [1, 2] {
        let floor = best(reps, || {
            let opts = Options {
                threads: Some(threads),
                ..Options::default()
            };
            read_pair(&a, &b, &opts, &Progress::default()).expect("read");
        });
        println!("{threads}t floor            {floor:.3} s");
        for margins in [false, true] {
            let t = best(reps, || {
                let opts = Options {
                    threads: Some(threads),
                    margins,
                    ..Options::default()
                };
                diff(&a, &b, &opts, &Progress::default()).expect("diff");
            });
            println!(
                "{threads}t diff margins={margins:<5} {t:.3} s  ({:.0}% of floor)",
                100.0 * floor / t
            );
        }
    }
}
