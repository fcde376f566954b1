"""``modelkin.compare``: how checkpoint B relates to checkpoint A, with the evidence.

Two checkpoints go through the streaming pipeline (:mod:`modelkin.compare.weights`); a fingerprint on
either side sends both through the fingerprint tests (:mod:`modelkin.compare.prints`). The result type
is in :mod:`modelkin.compare.result`.

``modelkin.compare`` is also the name of the public function, which ``modelkin`` exports: there,
``modelkin.compare`` is the function and this package is reached by importing from it
(``from modelkin.compare import CompareResult``, ``from modelkin.compare.weights import …``).
"""

from __future__ import annotations

import os

from .. import _engine
from ..fingerprint import Fingerprint, is_fingerprint
from ..hub import resolve
from ..progress import ProgressArg
from .prints import compare_fingerprints, print_of, screen
from .result import COMPARE_SCHEMA, CompareResult, PrintEvidence
from .weights import compare_checkpoints

__all__ = ["COMPARE_SCHEMA", "CompareResult", "PrintEvidence", "compare", "compare_fingerprints", "screen"]


def compare(
    a: str | os.PathLike[str] | Fingerprint,
    b: str | os.PathLike[str] | Fingerprint,
    *,
    threads: int | None = None,
    progress: ProgressArg = None,
    sample_size: int = 4096,
) -> CompareResult:
    """Compares checkpoint ``b`` against ``a`` and says how they relate (see :mod:`modelkin.verdict`).

    Tensors are aligned by canonical name and by content, so renamed, re-indexed (layer-dropped) and
    resized (vocabulary) tensors are still compared. ``threads`` and ``progress`` are as in
    :func:`modelkin.diff`. Either side may be a fingerprint (a file written by
    :func:`modelkin.fingerprint`, or the object): the same tests then run on what it holds (see
    :func:`compare_fingerprints`).
    """
    n = _engine.threads(threads)
    a = a if isinstance(a, Fingerprint) else resolve(a)
    b = b if isinstance(b, Fingerprint) else resolve(b)
    if isinstance(a, Fingerprint) or isinstance(b, Fingerprint) or is_fingerprint(a) or is_fingerprint(b):
        return compare_fingerprints(
            print_of(a, b, n, progress, sample_size), print_of(b, a, n, progress, sample_size)
        )
    return compare_checkpoints(os.fspath(a), os.fspath(b), n, progress, sample_size)
