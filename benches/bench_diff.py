#!/usr/bin/env python3
"""Times ``modelkin.diff`` side by side with its read-only floor and the numpy / torch scripts users write.

For each size the script writes a Llama-shaped bf16 checkpoint pair (b = a + N(0, 1.4e-3²)) tensor by
tensor in bounded memory, warms the page cache, then runs every contender ``--repeat`` times in a fresh
subprocess whose anonymous memory is sampled while it runs. The report is printed and written to
``benches/RESULTS.md``. See ``benches/README.md``::

    python benches/bench_diff.py                                # 0.5B and 2B parameters
    python benches/bench_diff.py --sizes 0.02,0.05 --repeat 1   # a quick end-to-end check
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from benchkit import cpu_model, log, write_atomically

HERE = Path(__file__).resolve().parent
#: σ of the noise added to every weight (the Llama3-V recipe; same value as ``modelkin.demo``).
NOISE_SIGMA = 1.4e-3
VOCAB = 32000
HEAD_DIM = 64
#: TinyLlama's intermediate / hidden ratio (5632 / 2048).
FFN_RATIO = 2.75
#: Elements generated per step when writing a tensor (32 MiB of float32).
CHUNK = 1 << 23
BF16_BYTES = 2
MIB = 1 << 20
#: How often the parent samples a worker's anonymous memory.
POLL_SECONDS = 0.01
#: Thread counts of the floor, modelkin and torch contenders.
THREADS = (1, 2)
#: The contender every other is compared with in the "÷ modelkin(2t)" column.
REFERENCE = ("modelkin", 2)

# --------------------------------------------------------------------------------------------------------
# Llama-shaped checkpoints
# --------------------------------------------------------------------------------------------------------


class TensorSpec(NamedTuple):
    """One tensor to generate: values are ``loc + scale · N(0, 1)``."""

    name: str
    shape: tuple[int, ...]
    loc: float
    scale: float

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class LlamaShape:
    """Dimensions of a Llama-style decoder (head size 64, one KV head per 8 query heads, untied head)."""

    hidden: int
    intermediate: int
    layers: int
    vocab: int = VOCAB

    @classmethod
    def for_params(cls, params: float) -> LlamaShape:
        """The shape closest to ``params`` parameters: hidden 256 … 4096, as many layers as needed."""
        steps = ((5e9, 4096), (1e9, 2048), (2.5e8, 1024), (5e7, 512))
        hidden = next((h for p, h in steps if params >= p), 256)
        intermediate = round(hidden * FFN_RATIO / 64) * 64
        fixed = 2 * VOCAB * hidden + hidden  # embeddings, lm_head, final norm
        per_layer = cls(hidden, intermediate, 1).params - fixed
        return cls(hidden, intermediate, max(1, round((params - fixed) / per_layer)))

    @property
    def heads(self) -> int:
        """Query heads."""
        return self.hidden // HEAD_DIM

    @property
    def kv_heads(self) -> int:
        """Key/value heads (grouped-query attention)."""
        return max(1, self.heads // 8)

    def tensors(self) -> list[TensorSpec]:
        """Every tensor, in file order, with Hugging Face names."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * HEAD_DIM

        def w(name: str, *shape: int) -> TensorSpec:
            return TensorSpec(name, shape, 0.0, 0.02)

        def norm(name: str) -> TensorSpec:
            return TensorSpec(name, (h,), 1.0, 0.05)

        out = [w("model.embed_tokens.weight", self.vocab, h)]
        for layer in range(self.layers):
            p = f"model.layers.{layer}."
            out += [
                norm(p + "input_layernorm.weight"),
                w(p + "self_attn.q_proj.weight", h, h),
                w(p + "self_attn.k_proj.weight", kv, h),
                w(p + "self_attn.v_proj.weight", kv, h),
                w(p + "self_attn.o_proj.weight", h, h),
                norm(p + "post_attention_layernorm.weight"),
                w(p + "mlp.gate_proj.weight", i, h),
                w(p + "mlp.up_proj.weight", i, h),
                w(p + "mlp.down_proj.weight", h, i),
            ]
        return [*out, norm("model.norm.weight"), w("lm_head.weight", self.vocab, h)]

    @property
    def params(self) -> int:
        """Number of parameters."""
        return sum(t.numel for t in self.tensors())

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"hidden {self.hidden}, intermediate {self.intermediate}, {self.layers} layers, "
            f"{self.heads} heads ({self.kv_heads} KV), vocab {self.vocab}"
        )


def safetensors_header(specs: Sequence[TensorSpec], metadata: dict[str, str]) -> bytes:
    """The 8-byte little-endian length and the space-padded JSON header of an all-BF16 file."""
    entries: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for t in specs:
        end = offset + t.numel * BF16_BYTES
        entries[t.name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [offset, end]}
        offset = end
    body = json.dumps(entries, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body


def pair_headers(specs: Sequence[TensorSpec], seed: int, sigma: float) -> tuple[bytes, bytes]:
    """Headers of checkpoint a and of its noised copy b (the metadata records how they were made)."""
    meta = {"format": "pt", "modelkin_bench": f"llama-like, seed {seed}"}
    noised = dict(meta, modelkin_bench=f"llama-like, seed {seed}, + N(0, {sigma:g}^2)")
    return safetensors_header(specs, meta), safetensors_header(specs, noised)


def _le_u16(x: npt.NDArray[Any]) -> memoryview:
    """The raw little-endian bytes of a bf16 array, without a copy on little-endian machines."""
    return x.view(np.uint16).astype("<u2", copy=False).data


def write_pair(specs: Sequence[TensorSpec], a_path: Path, b_path: Path, *, seed: int, sigma: float) -> None:
    """Writes a (random Llama-like weights) and b = a + N(0, σ²), both bf16, one chunk at a time.

    Each file is written under a temporary name, synced and renamed, so a half-written pair is never
    mistaken for a complete one.
    """
    import ml_dtypes

    bf16 = ml_dtypes.bfloat16
    weights = np.random.default_rng(seed)
    noise = np.random.default_rng(seed + 1)
    header_a, header_b = pair_headers(specs, seed, sigma)
    tmp_a, tmp_b = a_path.with_suffix(".partial"), b_path.with_suffix(".partial")
    with open(tmp_a, "wb") as fa, open(tmp_b, "wb") as fb:
        fa.write(header_a)
        fb.write(header_b)
        for t in specs:
            for start in range(0, t.numel, CHUNK):
                k = min(CHUNK, t.numel - start)
                x = weights.standard_normal(k, dtype=np.float32)
                x *= t.scale
                x += t.loc
                a16 = x.astype(bf16)  # round to nearest even
                y = noise.standard_normal(k, dtype=np.float32)
                y *= sigma
                y += a16.astype(np.float32)
                fa.write(_le_u16(a16))
                fb.write(_le_u16(y.astype(bf16)))
        for f in (fa, fb):
            f.flush()
            os.fsync(f.fileno())  # no writeback of dirty pages during the timings
    os.replace(tmp_a, a_path)
    os.replace(tmp_b, b_path)


def pair_is_current(specs: Sequence[TensorSpec], a_path: Path, b_path: Path, seed: int, sigma: float) -> bool:
    """True when both files exist with the expected header and size (e.g. left by an earlier ``--keep``)."""
    data = sum(t.numel for t in specs) * BF16_BYTES
    for path, header in zip((a_path, b_path), pair_headers(specs, seed, sigma)):
        try:
            with open(path, "rb") as f:
                if f.read(len(header)) != header or os.fstat(f.fileno()).st_size != len(header) + data:
                    return False
        except OSError:
            return False
    return True


def warm_page_cache(paths: Sequence[Path]) -> None:
    """Puts the files in the page cache as a first sequential read leaves them.

    The same bytes can be cached in 4 KiB pages (as a file just written often is) or in large folios
    (as readahead builds them); mapping the former costs the read-only floor about 3× more, and
    other work on the machine (a compiler, say) splits large folios over time. So each file is
    written back, dropped from the cache (where the OS allows it) and read back in order, and every
    contender starts from that same state.
    """
    buf = memoryview(bytearray(16 * MIB))
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            if hasattr(os, "posix_fadvise"):
                os.fsync(f.fileno())  # only clean pages can be dropped
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while f.readinto(buf):
                pass


def huge_cache_mib() -> float | None:
    """Page cache held in PMD-sized (2 MiB) file folios, in MiB (Linux ``nr_file_hugepages``), if known."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "nr_file_hugepages":
                    return int(value) * 2.0
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------------------------------------
# The peers: the per-tensor scripts users write today
# --------------------------------------------------------------------------------------------------------

PeerStats = dict[str, float]


def numpy_pair_stats(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> PeerStats:
    """Statistics of d = b − a in float64 numpy, moments written out (no scipy)."""
    d = b - a
    mean = d.mean()
    c = d - mean
    c2 = c * c
    m2 = c2.mean()
    m3 = (c2 * c).mean()
    m4 = (c2 * c2).mean()
    return {
        "mean": float(mean),
        "std": float(np.sqrt(m2)),
        "skewness": float(m3 / m2**1.5),
        "kurtosis": float(m4 / m2**2 - 3.0),
        "max_abs_d": float(np.abs(d).max()),
        "cosine": float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))),
        "equal": int(np.count_nonzero(a == b)),
    }


class RawBF16File:
    """A minimal ``safe_open`` stand-in for BF16 tensors: raw bytes viewed as ``ml_dtypes.bfloat16``.

    Used only when safetensors' numpy backend cannot return bf16 arrays.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        self.start = 8 + n
        self.header: dict[str, Any] = header

    def __enter__(self) -> RawBF16File:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def keys(self) -> list[str]:
        """Tensor names, sorted (as ``safe_open`` returns them)."""
        return sorted(self.header)

    def get_tensor(self, name: str) -> npt.NDArray[Any]:
        """Reads one tensor into memory."""
        import ml_dtypes

        entry = self.header[name]
        if entry["dtype"] != "BF16":
            raise TypeError(f"{self.path}: {name} is {entry['dtype']}; this reader handles BF16 only")
        begin, end = entry["data_offsets"]
        raw = np.fromfile(self.path, dtype="<u2", count=(end - begin) // 2, offset=self.start + begin)
        tensor: npt.NDArray[Any] = raw.view(ml_dtypes.bfloat16).reshape(entry["shape"])
        return tensor


def open_np(path: str) -> Any:
    """``safe_open(path, framework="np")``: with ml_dtypes imported, it returns bf16 arrays."""
    from safetensors import safe_open

    return safe_open(path, framework="np")


def numpy_script(
    a_path: str, b_path: str, names: Sequence[str] | None = None, opener: Callable[[str], Any] = open_np
) -> dict[str, PeerStats]:
    """The plain numpy script: each tensor of both files to float64, then the statistics of b − a."""
    results = {}
    with opener(a_path) as fa, opener(b_path) as fb:
        for name in names or fa.keys():
            a = fa.get_tensor(name).astype(np.float64).ravel()
            b = fb.get_tensor(name).astype(np.float64).ravel()
            results[name] = numpy_pair_stats(a, b)
    return results


def torch_script(a_path: str, b_path: str, names: Sequence[str] | None = None) -> dict[str, PeerStats]:
    """The plain torch script: each tensor of both files ``.float()``, then the statistics of b − a."""
    import torch
    from safetensors import safe_open

    results = {}
    with safe_open(a_path, framework="pt") as fa, safe_open(b_path, framework="pt") as fb:
        for name in names or fa.keys():
            a = fa.get_tensor(name).float().flatten()
            b = fb.get_tensor(name).float().flatten()
            d = b - a
            mean = d.mean()
            c = d - mean
            c2 = c * c
            m2 = c2.mean()
            m3 = (c2 * c).mean()
            m4 = (c2 * c2).mean()
            results[name] = {
                "mean": mean.item(),
                "std": m2.sqrt().item(),
                "skewness": (m3 / m2**1.5).item(),
                "kurtosis": (m4 / m2**2 - 3.0).item(),
                "max_abs_d": d.abs().max().item(),
                "cosine": torch.nn.functional.cosine_similarity(a, b, dim=0).item(),
                "equal": int((a == b).sum().item()),
            }
    return results


# --------------------------------------------------------------------------------------------------------
# Worker: one contender, timed in a fresh process
# --------------------------------------------------------------------------------------------------------

#: Per tensor: equal count, max |d|, σ(d) — compared across contenders.
Checks = dict[str, list[float]]


def _peer_checks(results: dict[str, PeerStats]) -> Checks:
    return {k: [v["equal"], v["max_abs_d"], v["std"]] for k, v in results.items()}


def prepare(spec: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[Any], Checks], str]:
    """Imports what a contender needs and returns (run once, checks from a result, note for the report)."""
    a, b, threads, kind = spec["a"], spec["b"], spec["threads"], spec["kind"]
    names: list[str] | None = spec["names"]
    if kind == "floor":
        from modelkin import _engine

        return (lambda: _engine.read_pair(a, b, threads)), (lambda _: {}), ""
    if kind == "modelkin":
        import modelkin

        def run_modelkin() -> Any:
            result = modelkin.diff(a, b, threads=threads)
            result.totals()
            return result

        def modelkin_checks(result: Any) -> Checks:
            return {p.name: [p.stats.equal, p.stats.max_abs_d, p.stats.d.std] for p in result.pairs}

        return run_modelkin, modelkin_checks, ""
    if kind == "numpy":
        import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)

        opener: Callable[[str], Any] = open_np
        note = "safetensors numpy backend (bf16 arrays via ml_dtypes)"
        try:
            with open_np(a) as f:
                f.get_tensor(spec["probe"])
        except Exception as e:  # e.g. TypeError: data type 'bfloat16' not understood
            opener = RawBF16File
            note = f"raw bytes viewed as ml_dtypes.bfloat16 (safetensors numpy backend: {e})"
        return (lambda: numpy_script(a, b, names, opener)), _peer_checks, note
    if kind == "torch":
        import torch

        torch.set_num_threads(threads)
        return (lambda: torch_script(a, b, names)), _peer_checks, ""
    raise ValueError(f"unknown contender {kind!r}")


def proc_kib(path: str) -> dict[str, int]:
    """The ``kB`` fields of a /proc status-like file (``/proc/<pid>/status``, ``smaps_rollup``)."""
    out: dict[str, int] = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0])
    return out


def worker() -> None:
    """Reads a spec (JSON) on stdin, times the contender, prints one JSON line of results on stdout."""
    spec = json.load(sys.stdin)
    run, checks, note = prepare(spec)
    gc.collect()
    anon_base = proc_kib("/proc/self/status").get("RssAnon", 0)
    times, result = [], None
    for _ in range(spec["repeat"]):
        result = None  # the previous run's result must not count towards this run's memory
        gc.collect()
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    status = proc_kib("/proc/self/status")
    rollup = proc_kib("/proc/self/smaps_rollup")
    out = {"times": times, "anon_base": anon_base, "status": status, "rollup": rollup}
    out |= {"checks": checks(result), "note": note}
    print(json.dumps(out))


# --------------------------------------------------------------------------------------------------------
# Parent: measuring and reporting
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One competitor in the race."""

    kind: str
    label: str
    threads: int

    @property
    def key(self) -> tuple[str, int]:
        """(kind, threads)."""
        return self.kind, self.threads


CONTENDERS = (
    *(Contender("floor", "`modelkin._engine.read_pair` (read-only floor)", n) for n in THREADS),
    *(Contender("modelkin", "`modelkin.diff`", n) for n in THREADS),
    Contender("numpy", "numpy script (float64)", 1),
    *(Contender("torch", "torch script (float32)", n) for n in THREADS),
)


@dataclass
class Measurement:
    """A contender's runs on one checkpoint pair. Memory fields are KiB."""

    contender: Contender
    times: list[float] = field(default_factory=list)
    scale: float = 1.0  # model elements / elements timed (> 1 when extrapolated)
    tensors: int = 0
    anon_base: int = 0
    anon_peak: int = 0
    status: dict[str, int] = field(default_factory=dict)
    rollup: dict[str, int] = field(default_factory=dict)
    checks: Checks = field(default_factory=dict)
    note: str = ""
    error: str | None = None
    huge_cache: float | None = None  # MiB of page cache in 2 MiB folios when the worker started

    @property
    def best(self) -> float:
        """Best time, scaled to the whole model."""
        return min(self.times) * self.scale

    @property
    def median(self) -> float:
        """Median time, scaled to the whole model."""
        return statistics.median(self.times) * self.scale

    @property
    def extrapolated(self) -> bool:
        """Whether the times were measured on a subset of tensors."""
        return self.scale != 1.0


def measure(contender: Contender, spec: dict[str, Any], scale: float, tensors: int) -> Measurement:
    """Runs a worker for ``contender`` and samples its anonymous memory (RssAnon) while it runs."""
    m = Measurement(contender, scale=scale, tensors=tensors)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    # The worker's stdout goes to a file: a pipe nobody reads while polling could fill up and block it.
    with tempfile.TemporaryFile("w+") as stdout:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=stdout, text=True)
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(dict(spec, kind=contender.kind, threads=contender.threads)))
            proc.stdin.close()
            while proc.poll() is None:
                m.anon_peak = max(m.anon_peak, proc_kib(f"/proc/{proc.pid}/status").get("RssAnon", 0))
                time.sleep(POLL_SECONDS)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stdout.seek(0)
        lines = stdout.read().splitlines()
    if proc.returncode != 0 or not lines:
        m.error = f"worker failed with exit code {proc.returncode} (see its stderr above)"
        return m
    out = json.loads(lines[-1])
    m.times, m.anon_base, m.status, m.rollup = out["times"], out["anon_base"], out["status"], out["rollup"]
    m.checks, m.note = out["checks"], out["note"]
    m.anon_peak = max(m.anon_peak, m.status.get("RssAnon", 0))
    return m


@dataclass
class SizeRun:
    """Everything measured on one checkpoint pair."""

    size: float
    shape: LlamaShape
    elements: int
    nbytes: int  # both files
    seconds_to_write: float | None  # None when an existing pair was reused
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def find(self, key: tuple[str, int]) -> Measurement | None:
        """The successful measurement of (kind, threads), if any."""
        for m in self.measurements:
            if m.contender.key == key and m.error is None:
                return m
        return None


def compare_checks(run: SizeRun) -> None:
    """Checks that every peer found the same equal counts, max |d| and σ(d) as modelkin, tensor by tensor."""
    ref = run.find(REFERENCE) or run.find(("modelkin", THREADS[0]))
    if ref is None:
        return
    for m in run.measurements:
        if m.contender.kind not in ("numpy", "torch") or m.error is not None:
            continue
        bad = []
        for name, (equal, max_abs, std) in m.checks.items():
            r_equal, r_max, r_std = ref.checks.get(name, (math.nan,) * 3)
            same = equal == r_equal and math.isclose(max_abs, r_max, rel_tol=1e-6)
            if not (same and math.isclose(std, r_std, rel_tol=1e-4, abs_tol=1e-12)):
                bad.append(name)
        label = f"{m.contender.label}, {threads_text(m.contender.threads)}"
        if bad:
            run.notes.append(f"**Mismatch**: {label} disagrees with modelkin on {len(bad)} tensors {bad[:3]}")
        else:
            run.notes.append(
                f"{label} agrees with modelkin on all {len(m.checks)} tensors it read "
                "(equal count, max |d|, σ(d))."
            )


# -- formatting ------------------------------------------------------------------------------------------


def threads_text(n: int) -> str:
    """``1 thread``, ``2 threads``."""
    return f"{n} thread{'s' if n > 1 else ''}"


def mib(kib: int | None) -> str:
    """KiB → MiB with one decimal, or a dash."""
    return "–" if not kib else f"{kib / 1024:.1f}"


def secs(m: Measurement, value: float) -> str:
    """Seconds, marked ≈ when extrapolated."""
    return f"{'≈' if m.extrapolated else ''}{value:.3f}"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], numbers: bool = True) -> list[str]:
    """A Markdown table; with ``numbers``, every column but the first is right-aligned."""
    align = ["---"] + ["--:" if numbers else "---"] * (len(head) - 1)
    return ["| " + " | ".join(r) + " |" for r in (head, align, *rows)]


def size_section(run: SizeRun) -> list[str]:
    """The speed and memory tables of one size."""
    gb = run.nbytes / 1e9
    written = "reused from an earlier `--keep` run"
    if run.seconds_to_write is not None:
        written = f"written in {run.seconds_to_write:.1f} s"
    out = [
        f"## {run.size:g}B parameters",
        "",
        f"{run.elements:,} elements per model ({run.shape.describe()}); 2 × {gb / 2:.2f} GB of bf16, "
        f"{written}.",
        "",
    ]
    ref = run.find(REFERENCE)
    rows = []
    for m in run.measurements:
        c = m.contender
        if m.error is not None:
            rows.append([c.label, str(c.threads), m.error, *["–"] * 5])
            continue
        floor = run.find(("floor", c.threads))
        rows.append(
            [
                c.label,
                str(c.threads) + ("¹" if c.kind == "numpy" else ""),
                secs(m, m.best),
                secs(m, m.median),
                f"{run.elements / m.best / 1e6:,.0f}",
                f"{run.nbytes / m.best / 1e9:.2f}",
                f"{100 * floor.best / m.best:.0f} %" if floor else "–",
                f"{m.best / ref.best:.2f}×" if ref else "–",
            ]
        )
    head = ["contender", "threads", "best s", "median s", "M elem/s", "GB/s", "% of floor", "÷ modelkin(2t)"]
    out += ["**Speed**", "", *table(head, rows), ""]
    rows = [
        [
            m.contender.label,
            str(m.contender.threads),
            mib(m.anon_base),
            mib(m.anon_peak),
            mib(m.anon_peak - m.anon_base) if m.anon_peak else "–",
            mib(m.status.get("RssAnon")),
            mib(m.rollup.get("Anonymous")),
            mib(m.rollup.get("Private_Dirty")),
            mib(m.status.get("VmHWM")),
        ]
        for m in run.measurements
        if m.error is None
    ]
    head = [
        "contender",
        "threads",
        "anon after imports",
        "anon peak",
        "Δ anon peak",
        "RssAnon end",
        "Anonymous end",
        "Private_Dirty end",
        "VmHWM (RSS peak)",
    ]
    out += ["**Memory** (MiB; see the notes below)", "", *table(head, rows), ""]
    out += [f"- {n}" for n in run.notes]
    return [*out, ""] if run.notes else out


def across_sizes(runs: Sequence[SizeRun]) -> list[str]:
    """Best time, throughput and Δ anonymous peak of every contender at every size."""
    keys = list(dict.fromkeys(m.contender for r in runs for m in r.measurements))
    head = ["contender", "threads", *(f"{r.size:g}B: s (GB/s)" for r in runs)]
    speed, memory = [], []
    for c in keys:
        s_row, m_row = [c.label, str(c.threads)], [c.label, str(c.threads)]
        for r in runs:
            m = r.find(c.key)
            s_row.append("–" if m is None else f"{secs(m, m.best)} ({r.nbytes / m.best / 1e9:.2f})")
            m_row.append("–" if m is None else mib(m.anon_peak - m.anon_base))
        speed.append(s_row)
        memory.append(m_row)
    head_m = ["contender", "threads", *(f"{r.size:g}B" for r in runs)]
    return [
        "## Across sizes",
        "",
        "**Best time** (seconds, GB/s of both files)",
        "",
        *table(head, speed),
        "",
        "**Δ anonymous memory peak** (MiB above the process after its imports)",
        "",
        *table(head_m, memory),
        "",
    ]


def version_of(module: str) -> str:
    """A module's version, or ``not installed``."""
    try:
        return str(__import__(module).__version__)
    except Exception:
        return "not installed"


def probe_torch() -> tuple[str | None, str]:
    """(version or None, message): imports torch in a subprocess (a broken install must not break us)."""
    cmd = [sys.executable, "-c", "import torch; print(torch.__version__)"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, "torch: not installed (import timed out)"
    if p.returncode == 0:
        return p.stdout.strip(), f"torch: {p.stdout.strip()}"
    last = (p.stderr.strip().splitlines() or ["?"])[-1]
    if "ModuleNotFoundError" in last:
        return None, "torch: not installed"
    return None, f"torch: not installed (import fails: {last[:160]})"


def elf_sections(path: Path) -> set[str]:
    """Section names of a 64-bit little-endian ELF file."""
    data = path.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        raise ValueError("not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i: int) -> tuple[int, int, int]:  # (name index, offset, size)
        base = shoff + i * shentsize
        return struct.unpack_from("<I", data, base)[0], *struct.unpack_from("<QQ", data, base + 0x18)

    _, start, size = section(shstrndx)
    names = data[start : start + size]
    return {names[n : names.index(b"\0", n)].decode() for n, _, _ in map(section, range(shnum))}


def native_build() -> str:
    """Whether the native module looks like a release build (``maturin develop`` without ``--release``
    builds the dev profile, whose debug info shows as a ``.debug_info`` section)."""
    from modelkin import _engine

    try:
        debug = ".debug_info" in elf_sections(Path(_engine.native_file()))
    except (OSError, ValueError, struct.error):
        return "build profile unknown"
    return "debug info present: a dev build? rebuild with --release" if debug else "release build"


def machine_section(torch_version: str | None, args: argparse.Namespace) -> list[str]:
    """Machine, versions and method."""
    import modelkin

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = proc_kib("/proc/meminfo").get("MemTotal", 0) / MIB
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        ["date", now],
        ["command", f"`{args.command}`"],
        ["CPU", cpu_model()],
        ["cores", f"{os.cpu_count()} logical, {affinity} usable"],
        ["memory", f"{mem:.1f} GiB"],
        ["load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())],
        ["OS", f"{platform.system()} {platform.release()}"],
        ["python", platform.python_version()],
        ["numpy", np.__version__],
        ["safetensors", version_of("safetensors")],
        ["ml_dtypes", version_of("ml_dtypes")],
        ["torch", torch_version or "not installed"],
        ["modelkin", f"{modelkin.__version__} ({native_build()})"],
    ]
    return [
        "# modelkin benchmark: `modelkin.diff` vs the read-only floor vs numpy / torch",
        "",
        *table(["", ""], rows, numbers=False),
        "",
        "Method: warm page cache: before each contender both files are dropped from the cache and read "
        f"back in order, so every contender starts from the same cache state; each runs {args.repeat}× "
        "in a fresh process; best and median wall time. Elements = parameters of one model; GB/s counts "
        "the bytes of both files. *% of floor* = read-only floor time ÷ contender time at the same thread "
        "count. *÷ modelkin(2t)* = contender time ÷ `modelkin.diff(threads=2)` time. "
        + (
            f"Peers (numpy, torch) read whole models up to {args.peer_max_size:g}B; larger models are timed "
            f"on their first tensors in file order up to {args.peer_max_size:g}B elements and scaled by "
            "element count (times marked ≈)."
            if args.peer_max_size
            else "Peers (numpy, torch) read whole models."
        ),
        "",
        "¹ numpy's element-wise work is single-threaded; `np.dot` / `np.linalg.norm` (cosine) go through "
        "BLAS, which may use every core.",
        "",
    ]


def peer_subset(
    specs: Sequence[TensorSpec], size: float, max_size: float
) -> tuple[list[str] | None, float, int]:
    """(names or None for all, scale factor, tensors) the peers read.

    The whole model up to ``max_size`` billion parameters (nominal); beyond, the first tensors in file
    order up to ``max_size`` billion elements, which include the largest tensor (the embeddings).
    """
    total = sum(t.numel for t in specs)
    if not max_size or size <= max_size:
        return None, 1.0, len(specs)
    budget = max_size * 1e9
    names, n = [], 0
    for t in specs:
        if n >= budget:
            break
        names.append(t.name)
        n += t.numel
    return names, total / n, len(names)


def bench_size(
    size: float, data: Path, contenders: Sequence[Contender], args: argparse.Namespace, created: list[Path]
) -> SizeRun:
    """Writes (or reuses) one pair, warms the cache and measures every contender on it."""
    shape = LlamaShape.for_params(size * 1e9)
    specs = shape.tensors()
    elements = sum(t.numel for t in specs)
    nbytes = 2 * elements * BF16_BYTES
    a_path, b_path = data / f"llama-{size:g}b-a.safetensors", data / f"llama-{size:g}b-b.safetensors"
    created += [a_path, b_path, a_path.with_suffix(".partial"), b_path.with_suffix(".partial")]
    seconds: float | None = None
    if pair_is_current(specs, a_path, b_path, args.seed, NOISE_SIGMA):
        log(f"[{size:g}B] reusing {a_path.name}, {b_path.name}")
    else:
        free = shutil.disk_usage(data).free
        if free < nbytes + (1 << 30):
            need = f"the {size:g}B pair needs {nbytes / 1e9:.1f} GB"
            raise RuntimeError(f"{data} has {free / 1e9:.1f} GB free; {need}")
        log(f"[{size:g}B] writing 2 × {nbytes / 2e9:.2f} GB ({shape.describe()}) …")
        start = time.perf_counter()
        write_pair(specs, a_path, b_path, seed=args.seed, sigma=NOISE_SIGMA)
        seconds = time.perf_counter() - start
        log(f"[{size:g}B] written in {seconds:.1f} s")
    available = proc_kib("/proc/meminfo").get("MemAvailable", 0) * 1024
    if available and nbytes > 0.8 * available:
        log(f"warning: the pair ({nbytes / 1e9:.1f} GB) may not stay in the page cache; timings include disk")
    run = SizeRun(size, shape, elements, nbytes, seconds)
    names, scale, tensors = peer_subset(specs, size, args.peer_max_size)
    probe = min(specs, key=lambda t: t.numel).name  # a norm vector: checks the numpy bf16 path cheaply
    for c in contenders:
        is_peer = c.kind in ("numpy", "torch")
        spec = {"a": str(a_path), "b": str(b_path), "repeat": args.repeat, "probe": probe}
        spec["names"] = names if is_peer else None
        log(f"[{size:g}B] {c.label}, {threads_text(c.threads)} …")
        warm_page_cache([a_path, b_path])
        huge = huge_cache_mib()
        m = measure(c, spec, scale if is_peer else 1.0, tensors if is_peer else len(specs))
        m.huge_cache = huge
        run.measurements.append(m)
        if m.error:
            log(f"[{size:g}B]   {m.error}")
        else:
            log(f"[{size:g}B]   best {secs(m, m.best)} s, Δ anon peak {mib(m.anon_peak - m.anon_base)} MiB")
    for kind in ("numpy", "torch"):
        peer = next((m for m in run.measurements if m.contender.kind == kind and m.error is None), None)
        if peer is None:
            continue
        if peer.note:
            run.notes.append(f"{kind} path: {peer.note}.")
        if peer.extrapolated:
            run.notes.append(
                f"{kind} timed on {peer.tensors} of {len(specs)} tensors ({100 / peer.scale:.0f} % of the "
                f"elements, including the largest), times extrapolated ×{peer.scale:.2f} by element count."
            )
    folios = [m.huge_cache for m in run.measurements if m.huge_cache is not None]
    if folios:
        run.notes.append(
            f"Page cache held in 2 MiB folios as each contender started (all files; Linux "
            f"`nr_file_hugepages`): {min(folios):,.0f}–{max(folios):,.0f} MiB, for "
            f"{run.nbytes / MIB:,.0f} MiB in the two files."
        )
    compare_checks(run)
    return run


def memory_notes() -> list[str]:
    """Why anonymous memory, not RSS."""
    return [
        "## Reading the memory columns",
        "",
        "- *anon* = `RssAnon` of `/proc/<pid>/status`: private memory the process allocated (heap, "
        "arrays, thread stacks). *anon peak* is sampled by the parent every "
        f"{POLL_SECONDS * 1000:.0f} ms; *Δ anon peak* subtracts the process after its imports.",
        "- *Anonymous* / *Private_Dirty* come from `/proc/self/smaps_rollup` at the end of the runs.",
        "- *VmHWM* is the peak RSS. It also counts the pages of memory-mapped files the process had "
        "mapped: page cache, shared with the kernel and reclaimable, which costs no private memory. For "
        "an mmap reader it can grow with the checkpoint; it is not the memory a run needs.",
        "",
    ]


def parse_sizes(text: str) -> list[float]:
    """``"0.1,0.5,2"`` → [0.1, 0.5, 2.0] (billions of parameters)."""
    try:
        sizes = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not sizes or any(not (0 < s < 1000) for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive numbers of billions: {text!r}")
    return sorted(set(sizes))


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description="Benchmark modelkin.diff against its read-only floor and the numpy / torch scripts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sizes_help = "billions of parameters, e.g. 0.1,0.5,2"
    p.add_argument("--sizes", type=parse_sizes, default="0.5,2", help=sizes_help)
    p.add_argument("--repeat", type=positive_int, default=3, help="timed runs per contender")
    p.add_argument("--data", type=Path, default=HERE / "data", help="folder for the generated checkpoints")
    p.add_argument("--keep", action="store_true", help="keep the generated checkpoints (reused next time)")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="Markdown report to write")
    p.add_argument(
        "--peer-max-size",
        type=float,
        default=0.5,
        help="largest size (billions) on which the numpy/torch scripts read the whole model; larger models "
        "are timed on that many elements and extrapolated (0 = always the whole model)",
    )
    p.add_argument(
        "--skip", default="", help="comma-separated contenders to leave out: floor, modelkin, numpy, torch"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated weights")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.command = shlex.join(["python", "benches/bench_diff.py", *(sys.argv[1:] if argv is None else argv)])
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - {"floor", "modelkin", "numpy", "torch"}
    if unknown:
        p.error(f"unknown contender(s) in --skip: {', '.join(sorted(unknown))}")
    return args


@contextmanager
def data_folder(path: Path, keep: bool) -> Iterator[list[Path]]:
    """Yields a list the caller fills with files to delete at the end (unless ``keep``)."""
    existed = path.exists()
    path.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    try:
        yield files
    finally:
        if not keep:
            for f in files:
                f.unlink(missing_ok=True)
            if not existed and not any(path.iterdir()):
                path.rmdir()


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark; returns the exit code."""
    args = arguments(argv)
    if args.worker:
        worker()
        return 0
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        print("error: the benchmark needs ml_dtypes (pip install ml_dtypes)", file=sys.stderr)
        return 2
    contenders = [c for c in CONTENDERS if c.kind not in args.skip]
    torch_version, torch_message = (None, "torch: skipped") if "torch" in args.skip else probe_torch()
    print(torch_message)
    if torch_version is None:
        contenders = [c for c in contenders if c.kind != "torch"]
    runs: list[SizeRun] = []
    try:
        with data_folder(args.data, args.keep) as created:
            for size in args.sizes:
                runs.append(bench_size(size, args.data, contenders, args, created))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    lines = machine_section(torch_version, args)
    if torch_version is None:
        lines += [f"*{torch_message}: no torch rows.*", ""]
    for run in runs:
        lines += size_section(run)
    if len(runs) > 1:
        lines += across_sizes(runs)
    lines += memory_notes()
    text = "\n".join(lines)
    write_atomically(args.results, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
