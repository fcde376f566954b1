"""Fingerprint size and time for large generated checkpoints, and a comparison run on fingerprints.

Reuses the Llama-shaped bf16 pairs of ``bench_diff.py`` (b = a + N(0, 1.4e-3²)), written to (or reused
from) ``benches/data``; writes ``benches/FINGERPRINTS.md``. Run on a quiet machine:

    python benches/fingerprint_cost.py --sizes 0.5,2 --keep
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import modelkin
from bench_diff import (
    NOISE_SIGMA,
    VOCAB,
    LlamaShape,
    data_folder,
    pair_is_current,
    parse_sizes,
    warm_page_cache,
    write_pair,
)
from benchkit import cpu_model, log, table, write_atomically

HERE = Path(__file__).resolve().parent


def best(f: object, repeat: int) -> float:
    """Best wall time of ``repeat`` calls of ``f``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def run_size(size: float, data: Path, keep: bool, repeat: int, seed: int) -> list[str]:
    """One row of the report for a pair of ``size`` billion parameters."""
    shape = LlamaShape.for_params(size * 1e9)
    specs = shape.tensors()
    a, b = data / f"llama-{size:g}b-a.safetensors", data / f"llama-{size:g}b-b.safetensors"
    if not pair_is_current(specs, a, b, seed, NOISE_SIGMA):
        log(f"[{size:g}B] writing the pair …")
        write_pair(specs, a, b, seed=seed, sigma=NOISE_SIGMA)
    warm_page_cache([a, b])
    log(f"[{size:g}B] fingerprinting …")
    t_plain = best(lambda: modelkin.fingerprint(a, hash_files=False), repeat)
    t_hashed = best(lambda: modelkin.fingerprint(a, hash_files=True), repeat)
    fa, fb = modelkin.fingerprint(a), modelkin.fingerprint(b)
    with tempfile.TemporaryDirectory() as tmp:
        size_bytes = fa.save(Path(tmp) / "a.mkfp").stat().st_size
    res = modelkin.compare_fingerprints(fa, fb)  # the first call also loads scipy
    t_compare = best(lambda: modelkin.compare_fingerprints(fa, fb), repeat)
    # The same with a tokenizer of VOCAB tokens beside the weights: token-keyed rows of the embedding
    # and of the (untied) LM head.
    tok = data / "tokenizer.json"
    tok.write_text(json.dumps({"model": {"type": "BPE", "vocab": {f"t{i}": i for i in range(VOCAB)}}}))
    try:
        t_tokens = best(lambda: modelkin.fingerprint(a, hash_files=False), repeat)
        with tempfile.TemporaryDirectory() as tmp:
            tokens_bytes = modelkin.fingerprint(a).save(Path(tmp) / "a.mkfp").stat().st_size
    finally:
        tok.unlink()
    return [
        f"{size:g}B ({shape.params / 1e9:.2f}B, {len(specs)} tensors)",
        f"{size_bytes / 1e6:.2f} MB",
        f"{size_bytes / len(specs) / 1024:.1f} KiB",
        f"{t_plain:.2f} s",
        f"{t_hashed:.2f} s",
        f"{tokens_bytes / 1e6:.2f} MB, {t_tokens:.2f} s",
        f"{t_compare:.2f} s",
        res.verdict.sentence,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--sizes", type=parse_sizes, default=[0.5, 2.0], help="billions of parameters")
    p.add_argument("--repeat", type=int, default=2, help="timed runs per measurement (best kept)")
    p.add_argument("--data", type=Path, default=HERE / "data", help="where the pairs are written")
    p.add_argument("--keep", action="store_true", help="keep the generated pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", type=Path, default=HERE / "FINGERPRINTS.md")
    args = p.parse_args(argv)
    rows = []
    with data_folder(args.data, args.keep) as created:
        for size in args.sizes:
            rows.append(run_size(size, args.data, args.keep, args.repeat, args.seed))
            created += [args.data / f"llama-{size:g}b-{s}.safetensors" for s in "ab"]
    lines = [
        "# Fingerprint size and time",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu_model()} · "
        f"{os.cpu_count()} cores · modelkin {modelkin.__version__} · `{' '.join(['python', *sys.argv])}`",
        "",
        "Llama-shaped bf16 pairs (b = a + N(0, 1.4e-3²)), warm page cache, best of the timed runs. "
        "*fingerprint*: one streaming pass (format `modelkin.fingerprint/2`: statistics, 2 048 samples "
        "per tensor with their row and column means, the tensor's content digest (SHA-256 of its 1 MiB "
        "pieces) and the sorted row and column norms of matrices at 128 quantiles; no tokenizer, so "
        "no token-keyed rows); *+ SHA-256*: also hashing every file; *with a tokenizer*: size and "
        f"time (no file hashes) with a `tokenizer.json` of {VOCAB:,} tokens beside the weights, so "
        "that the embedding and the untied LM head keep 8 columns of every token's row (16 bytes per "
        "token per matrix, 8 per token for the keys); *compare*: `compare_fingerprints` of the two "
        "fingerprints.",
        "",
        *table(
            [
                "pair",
                "fingerprint size",
                "per tensor",
                "fingerprint",
                "+ SHA-256",
                "with a tokenizer",
                "compare",
                "verdict",
            ],
            rows,
            text=1,
        ),
        "",
    ]
    text = "\n".join(lines)
    write_atomically(args.results, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
