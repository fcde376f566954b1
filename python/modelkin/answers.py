"""Per-item answers of models, for the behavioural line of evidence (:mod:`modelkin.evidence.behavior`).

Input, per model, a JSONL or CSV file of per-item predictions (``id``, ``prediction``), scored
against a gold file (``id``, ``answer``), or per-item correctness given directly (``id``, ``correct``
as 0/1/true/false). For each pair of models, on the items common to all files:

Answers are compared as text after stripping surrounding whitespace (JSON numbers and booleans as
their JSON text, ``1.0`` as ``1``); a gold answer may be a JSON list of accepted answers. An empty
or null prediction is an abstention: wrong, and never counted as an identical wrong answer.

"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

__all__ = ["ModelAnswers", "PathArg", "load_answers", "load_gold"]


#: Files larger than this are refused (per-item predictions are small).
_MAX_BYTES = 1 << 30

PathArg = Union[str, "os.PathLike[str]"]


def _norm(value: Any) -> str | None:
    """An answer as comparable text; None for an abstention (null or empty)."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = text.strip()
    return text or None


_TRUE = {"1", "true", "True", "TRUE", "1.0"}

_FALSE = {"0", "false", "False", "FALSE", "0.0"}


def _correct(value: Any, where: str) -> bool:
    """Parses a correctness flag (0/1/true/false, as JSON values or text)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip() in _TRUE | _FALSE:
        return value.strip() in _TRUE
    raise ValueError(f"{where}: 'correct' must be 0, 1, true or false, not {value!r}")


def _item_id(value: Any, where: str) -> str:
    """An item id as text (JSON strings and integers alike)."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise ValueError(f"{where}: 'id' must be a string or an integer, not {value!r}")
    text = _norm(value)
    if text is None:
        raise ValueError(f"{where}: empty 'id'")
    return text


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every record of a JSONL or CSV/TSV file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a JSONL or CSV file")
    if path.stat().st_size > _MAX_BYTES:
        raise ValueError(f"{path}: larger than {_MAX_BYTES >> 20} MB; not a per-item prediction file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    suffix = path.suffix.lower()
    first = text.lstrip()[:1]
    if suffix in (".jsonl", ".ndjson", ".json") or (suffix not in (".csv", ".tsv") and first == "{"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError(
                    f"{path}:{number}: expected one JSON object per line (JSONL), got {type(rec).__name__}"
                )
            yield number, rec
        return
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
    if reader.fieldnames is None:
        return
    header = [f.strip() for f in reader.fieldnames]
    if len(set(header)) != len(header):
        raise ValueError(f"{path}:1: duplicate column names in the header {header}")
    reader.fieldnames = header
    for row in reader:
        if None in row:
            raise ValueError(f"{path}:{reader.line_num}: more fields than the header has")
        if any(v is None for v in row.values()):
            raise ValueError(f"{path}:{reader.line_num}: fewer fields than the header has")
        yield reader.line_num, dict(row)


def _column_error(path: Path, number: int, field: str, rec: Mapping[str, Any]) -> ValueError:
    return ValueError(f"{path}:{number}: missing field '{field}' (fields: {', '.join(map(str, rec))})")


@dataclass(frozen=True)
class ModelAnswers:
    """One model's per-item answers: correctness given directly, predictions to be scored, or both."""

    name: str
    path: str
    correct: Mapping[str, bool] | None = None
    predictions: Mapping[str, str | None] | None = None

    @property
    def ids(self) -> frozenset[str]:
        """The item ids this model answered."""
        src = self.correct if self.correct is not None else self.predictions
        return frozenset(src or ())


def load_answers(path: PathArg, name: str | None = None) -> ModelAnswers:
    """Reads one model's per-item file (JSONL or CSV with ``id`` and ``prediction`` and/or ``correct``).

    Raises ``ValueError`` naming the file and the line for malformed input (bad JSON, missing field,
    duplicate id, bad correctness flag), ``FileNotFoundError`` for a missing file.
    """
    p = Path(path)
    correct: dict[str, bool] = {}
    preds: dict[str, str | None] = {}
    first: dict[str, int] = {}
    fields: tuple[bool, bool] | None = None
    for number, rec in _records(p):
        where = f"{p}:{number}"
        if "id" not in rec:
            raise _column_error(p, number, "id", rec)
        has = ("correct" in rec, "prediction" in rec)
        if fields is None:
            if not any(has):
                raise ValueError(
                    f"{where}: needs a 'prediction' or a 'correct' field (fields: {', '.join(rec)})"
                )
            fields = has
        if fields[0] and not has[0]:
            raise _column_error(p, number, "correct", rec)
        if fields[1] and not has[1]:
            raise _column_error(p, number, "prediction", rec)
        item = _item_id(rec["id"], where)
        if item in first:
            raise ValueError(f"{where}: duplicate id {item!r} (first on line {first[item]})")
        first[item] = number
        if fields[0]:
            correct[item] = _correct(rec["correct"], where)
        if fields[1]:
            preds[item] = _norm(rec["prediction"])
    if fields is None:
        raise ValueError(f"{p}: no records")
    return ModelAnswers(
        name=name or p.stem,
        path=str(p),
        correct=correct if fields[0] else None,
        predictions=preds if fields[1] else None,
    )


def load_gold(path: PathArg) -> dict[str, frozenset[str]]:
    """Reads a gold file (JSONL or CSV with ``id`` and ``answer``): id → accepted answers.

    In JSONL an answer may be a list of accepted answers. Raises ``ValueError`` naming the file and
    the line for malformed input, including an empty answer.
    """
    p = Path(path)
    gold: dict[str, frozenset[str]] = {}
    first: dict[str, int] = {}
    for number, rec in _records(p):
        where = f"{p}:{number}"
        for field in ("id", "answer"):
            if field not in rec:
                raise _column_error(p, number, field, rec)
        item = _item_id(rec["id"], where)
        if item in first:
            raise ValueError(f"{where}: duplicate id {item!r} (first on line {first[item]})")
        first[item] = number
        raw = rec["answer"] if isinstance(rec["answer"], list) else [rec["answer"]]
        accepted = frozenset(a for a in map(_norm, raw) if a is not None)
        if not accepted:
            raise ValueError(f"{where}: empty 'answer'")
        gold[item] = accepted
    if not gold:
        raise ValueError(f"{p}: no records")
    return gold
