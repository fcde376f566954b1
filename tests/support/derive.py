"""Deterministic derivations of a small Llama-shaped model, for the verdict tests.

Every function takes a state dict (tensor name → numpy array, Hugging Face names) and returns a new one,
plus what a test needs to know about the derivation (a name mapping, a permutation, a loss curve…). The
input is never modified. All randomness comes from explicit seeds, so every run builds the same models.

The independent controls are of two kinds: fresh initialisations with other seeds, and models trained
(briefly, in numpy) from fresh initialisations on data drawn from one fixed source, each on its own sample.
Trained models share structure that random ones do not: embedding rows of frequent tokens move most,
and the output head learns the token frequencies along a common direction. A kinship test must not
mistake that shared structure for shared weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import ml_dtypes
import numpy as np
from modelkin.demo import DemoShape, llama_like

__all__ = [
    "LLAMA3V_SIGMA",
    "SHAPE",
    "SHAPE6",
    "TrainingLog",
    "base",
    "cast",
    "exact_copy",
    "fine_tuned",
    "independent_init",
    "independently_trained",
    "int8_quantized",
    "layers_dropped",
    "llama3v",
    "neurons_permuted",
    "noised",
    "renamed",
    "scaled",
    "vocab_extended",
]

State = dict[str, np.ndarray]

#: The base model: ~1M parameters (4 MB in float32), Llama-shaped with grouped-query attention.
SHAPE = DemoShape(vocab=1024, hidden=128, intermediate=344, layers=4, heads=4, kv_heads=2)
#: The same with six layers, so that a few remain when two are dropped.
SHAPE6 = DemoShape(vocab=1024, hidden=128, intermediate=344, layers=6, heads=4, kv_heads=2)
#: σ of the noise in the Llama3-V case.
LLAMA3V_SIGMA = 1.4e-3

_LAYER = re.compile(r"^model\.layers\.(\d+)\.")


def base(seed: int = 0, shape: DemoShape = SHAPE) -> State:
    """A freshly initialised Llama-shaped float32 state dict (weights N(0, 0.02²), norm gains ≈ 1)."""
    return llama_like(shape, seed)


def exact_copy(state: Mapping[str, np.ndarray]) -> State:
    """A bit-exact copy (new arrays, same names, same order)."""
    return {k: v.copy() for k, v in state.items()}


def renamed(state: Mapping[str, np.ndarray], seed: int) -> tuple[State, dict[str, str]]:
    """The same tensors under arbitrary, unrelated names (``t<digits>``), in shuffled order.

    Returns the new state and the mapping old name → new name. The new names carry no layer number and
    match no naming scheme, so only content can tie them to the originals.
    """
    rng = np.random.default_rng(seed)
    names = list(state)
    codes = rng.choice(10**8, size=len(names), replace=False)
    mapping = {n: f"t{c:08d}" for n, c in zip(names, codes)}
    order = rng.permutation(len(names))
    out = {mapping[names[i]]: state[names[i]].copy() for i in order}
    return out, mapping


def noised(state: Mapping[str, np.ndarray], sigma: float, seed: int) -> State:
    """``state`` + N(0, σ²) in every tensor, norm gains and embeddings included (float64 sum, stored in
    each tensor's own dtype)."""
    rng = np.random.default_rng(seed)
    return {
        k: (v.astype(np.float64) + rng.standard_normal(v.shape) * sigma).astype(v.dtype)
        for k, v in state.items()
    }


def llama3v(state: Mapping[str, np.ndarray], seed: int = 31) -> tuple[State, dict[str, str]]:
    """The Llama3-V recipe: N(0, 1.4e-3²) added to every tensor, then every tensor renamed."""
    return renamed(noised(state, LLAMA3V_SIGMA, seed), seed + 1)


def cast(state: Mapping[str, np.ndarray], fmt: str) -> State:
    """Every tensor rounded to ``fmt`` ("bf16" or "f16", round to nearest even) and stored in it."""
    target = {"bf16": ml_dtypes.bfloat16, "f16": np.float16}[fmt]
    return {k: v.astype(target) for k, v in state.items()}


def int8_quantized(state: Mapping[str, np.ndarray]) -> State:
    """Per-output-channel symmetric int8 round trip of every 2-D weight, stored back as float32.

    Row r is quantised with scale s_r = max|W[r]| / 127 to q = round(W[r] / s_r) ∈ [−127, 127] and
    restored as q·s_r. 1-D tensors (norm gains) are left as they are.
    """
    out: State = {}
    for k, v in state.items():
        if v.ndim != 2:
            out[k] = v.copy()
            continue
        w = v.astype(np.float64)
        s = np.abs(w).max(axis=1, keepdims=True) / 127.0
        s = np.where(s == 0, 1.0, s)
        q = np.clip(np.rint(w / s), -127, 127)
        out[k] = (q * s).astype(np.float32)
    return out


def scaled(state: Mapping[str, np.ndarray], c: float) -> State:
    """Every tensor multiplied by ``c`` (in float64, stored in each tensor's own dtype)."""
    return {k: (v.astype(np.float64) * c).astype(v.dtype) for k, v in state.items()}


def _layer(name: str) -> int | None:
    m = _LAYER.match(name)
    return int(m.group(1)) if m else None


def fine_tuned(
    state: Mapping[str, np.ndarray], seed: int, rel: float = 0.04
) -> tuple[State, dict[str, float]]:
    """A fine-tune-like derivative: structured, heavy-tailed updates whose size varies by layer.

    Each 2-D weight W gets ΔW = (low-rank part) + (sparse heavy-tailed part), independent of W:

    - low rank: U·Vᵀ with a rank between 4 and 8 (Gaussian factors), 70 % of the update's energy;
    - sparse: 3 % of the entries get Student-t (3 degrees of freedom) kicks, 30 % of the energy;

    scaled so that ‖ΔW‖ / ‖W‖ = rel × f, with f growing linearly from 1 (first layer) to 3 (last
    layer); embeddings and the output head get f = 1. Norm gains are nudged by N(0, (0.002·f)²).

    Because ΔW is independent of W, every tensor's spread grows (var b = var a + var ΔW up to a
    cross term of order ‖ΔW‖‖W‖/√numel), as in real fine-tunes. Returns the state and, per tensor, the
    relative size of its update.
    """
    rng = np.random.default_rng(seed)
    layers = [i for i in (_layer(k) for k in state) if i is not None]
    last = max(layers) if layers else 0

    def factor(name: str) -> float:
        i = _layer(name)
        return 1.0 if i is None or last == 0 else 1.0 + 2.0 * i / last

    out: State = {}
    sizes: dict[str, float] = {}
    for k, v in state.items():
        w = v.astype(np.float64)
        f = factor(k)
        if v.ndim != 2:
            out[k] = (w + rng.standard_normal(v.shape) * 0.002 * f).astype(v.dtype)
            continue
        m, n = v.shape
        r = int(rng.integers(4, 9))
        low = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
        sparse = np.where(rng.random((m, n)) < 0.03, rng.standard_t(3, size=(m, n)), 0.0)
        target = rel * f * np.linalg.norm(w)
        delta = np.sqrt(0.7) * target * low / np.linalg.norm(low)
        delta += np.sqrt(0.3) * target * sparse / np.linalg.norm(sparse)
        out[k] = (w + delta).astype(v.dtype)
        sizes[k] = float(np.linalg.norm(delta) / np.linalg.norm(w))
    return out, sizes


def neurons_permuted(
    state: Mapping[str, np.ndarray], seed: int, sigma: float = 1e-3
) -> tuple[State, dict[int, np.ndarray]]:
    """The MLP hidden units of every layer permuted consistently, plus N(0, σ²) noise everywhere.

    Rows of ``gate_proj`` and ``up_proj`` and columns of ``down_proj`` are permuted by the same
    permutation (one per layer), which leaves the network's function unchanged. Returns the state and
    the permutation of each layer (B's unit j is A's unit perm[j]).
    """
    rng = np.random.default_rng(seed)
    perms: dict[int, np.ndarray] = {}
    out: State = {}
    for k, v in state.items():
        i = _layer(k)
        w = v
        if i is not None and ".mlp." in k:
            if i not in perms:
                size = v.shape[0] if k.endswith(("gate_proj.weight", "up_proj.weight")) else v.shape[1]
                perms[i] = rng.permutation(size)
            p = perms[i]
            # C order: numpy leaves v[:, p] in Fortran order, which safetensors' numpy writer would
            # store as the bytes of the transpose.
            w = np.ascontiguousarray(v[:, p] if k.endswith("down_proj.weight") else v[p, :])
        out[k] = w
    return noised(out, sigma, seed + 1), perms


def layers_dropped(
    state: Mapping[str, np.ndarray], drop: tuple[int, ...] = (1, 2)
) -> tuple[State, dict[int, int]]:
    """The layers in ``drop`` removed and the rest renumbered consecutively.

    Returns the state and the mapping B's layer → A's layer (with 6 layers and drop (1, 2):
    {0: 0, 1: 3, 2: 4, 3: 5}).
    """
    layers = sorted({i for i in (_layer(k) for k in state) if i is not None})
    kept = [i for i in layers if i not in drop]
    new_of = {old: new for new, old in enumerate(kept)}
    out: State = {}
    for k, v in state.items():
        i = _layer(k)
        if i is None:
            out[k] = v.copy()
        elif i in new_of:
            out[_LAYER.sub(f"model.layers.{new_of[i]}.", k, count=1)] = v.copy()
    return out, {new: old for old, new in new_of.items()}


def vocab_extended(state: Mapping[str, np.ndarray], extra: int = 1000, seed: int = 0) -> State:
    """``embed_tokens`` and ``lm_head`` with ``extra`` new rows, N(0, 0.02²), appended; the rest unchanged."""
    rng = np.random.default_rng(seed)
    out = exact_copy(state)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        v = state[k]
        new = (rng.standard_normal((extra, v.shape[1])) * 0.02).astype(v.dtype)
        out[k] = np.concatenate([v, new], axis=0)
    return out


# -- independent controls ---------------------------------------------------------------------------


def independent_init(seed: int, shape: DemoShape = SHAPE) -> State:
    """Same architecture, fresh initialisation from another seed."""
    return llama_like(shape, seed)


#: Seed of the one data source that every trained control learns from (their samples differ).
SOURCE_SEED = 20240601


@dataclass(frozen=True)
class _Source:
    """A fixed token source: Zipf-like unigram frequencies and a sparse, seeded Markov structure.

    x ~ unigram; y is one of x's 8 preferred successors with probability 0.7, else ~ unigram.
    """

    unigram: np.ndarray
    successors: np.ndarray

    @classmethod
    def make(cls, vocab: int) -> _Source:
        rng = np.random.default_rng(SOURCE_SEED)
        p = 1.0 / (np.arange(vocab) + 10.0) ** 1.1
        p = p[rng.permutation(vocab)]  # frequent tokens are spread over the vocabulary
        p /= p.sum()
        return cls(p, rng.choice(vocab, size=(vocab, 8), p=p))

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.choice(self.unigram.size, size=n, p=self.unigram)
        follow = self.successors[x, rng.integers(0, 8, size=n)]
        y = np.where(rng.random(n) < 0.7, follow, rng.choice(self.unigram.size, size=n, p=self.unigram))
        return x, y


@dataclass(frozen=True)
class TrainingLog:
    """What a training run did: loss at the start and end, and each trained tensor's relative move."""

    loss_first: float
    loss_last: float
    moved: dict[str, float]


def independently_trained(
    seed: int,
    data_seed: int,
    *,
    shape: DemoShape = SHAPE,
    steps: int = 200,
    batch: int = 384,
    lr: float = 4e-3,
) -> tuple[State, TrainingLog]:
    """A fresh model (seed ``seed``) trained briefly on its own sample (``data_seed``) of the fixed source.

    The trained part is a bigram language model inside the Llama state: token x → embedding row →
    RMS norm with the final norm gain → ``lm_head`` → softmax over the next token y, trained with Adam
    (full batch gradients in numpy, float32) on cross-entropy. ``model.embed_tokens.weight``,
    ``model.norm.weight`` and ``lm_head.weight`` are trained; every other tensor stays at its (seed's)
    initialisation. About 1.5 s with single-threaded BLAS; several seconds when a loaded machine
    slows OpenBLAS's threads down.
    """
    state = llama_like(shape, seed)
    names = ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight")
    params = [state[n].copy() for n in names]
    init = [p.copy() for p in params]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    source = _Source.make(shape.vocab)
    rng = np.random.default_rng(data_seed)
    rows = np.arange(batch)
    losses = []
    for step in range(1, steps + 1):
        emb, gain, head = params
        x, y = source.sample(rng, batch)
        e = emb[x]
        rms = np.sqrt(np.mean(e * e, axis=1, keepdims=True) + 1e-6)
        nrm = e / rms
        h = nrm * gain
        logits = h @ head.T
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(np.maximum(logits, -60.0))  # no float32 subnormals (they are very slow)
        p /= p.sum(axis=1, keepdims=True)
        losses.append(float(-np.mean(np.log(p[rows, y] + 1e-30))))
        dlog = p
        dlog[rows, y] -= 1.0
        dlog /= batch
        d_head = dlog.T @ h
        dh = dlog @ head
        d_gain = np.sum(dh * nrm, axis=0)
        dn = dh * gain
        de = (dn - nrm * np.mean(dn * nrm, axis=1, keepdims=True)) / rms
        d_emb = np.zeros_like(emb)
        np.add.at(d_emb, x, de)
        for i, g in enumerate((d_emb, d_gain, d_head)):
            g = g.astype(np.float32)
            m1[i] = b1 * m1[i] + (1 - b1) * g
            m2[i] = b2 * m2[i] + (1 - b2) * g * g
            mhat = m1[i] / (1 - b1**step)
            vhat = m2[i] / (1 - b2**step)
            params[i] = (params[i] - lr * mhat / (np.sqrt(vhat) + eps)).astype(np.float32)
    for n, p in zip(names, params):
        state[n] = p
    moved = {
        n: float(np.linalg.norm(p.astype(np.float64) - q) / np.linalg.norm(q))
        for n, p, q in zip(names, params, init)
    }
    return state, TrainingLog(float(np.mean(losses[:10])), float(np.mean(losses[-10:])), moved)
