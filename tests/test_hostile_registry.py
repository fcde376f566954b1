"""Hostile and unlucky registries and fingerprint files: every failure is one line
``modelkin: error: … <file> …`` with exit status 2 and no traceback; a database that is not a registry is
never modified; of two processes adding one name at once exactly one succeeds; a registered fingerprint
that does not load is reported and skipped, and the other entries still answer."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import modelkin
import pytest
from modelkin.errors import InvalidFingerprintError, RegistryError, RegistryWarning
from modelkin.registry import APPLICATION_ID, SCHEMA_VERSION

V1 = Path(__file__).parent / "data" / "tiny-v1.mkfp"
#: The registry table as modelkin wrote it before the application id and schema version were set.
LEGACY_SCHEMA = """CREATE TABLE IF NOT EXISTS prints (
    name TEXT PRIMARY KEY, source TEXT NOT NULL, created TEXT NOT NULL,
    n_params INTEGER NOT NULL, n_tensors INTEGER NOT NULL, blob BLOB NOT NULL)"""


def cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """``modelkin ARGS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "modelkin.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        **kw,  # type: ignore[call-overload]
    )


def refused(res: subprocess.CompletedProcess[str], path: Path, *words: str) -> str:
    """Asserts exit 2 and one line ``modelkin: error: … <path> …`` on stderr; returns that line."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("modelkin: error: ") and str(path) in lines[0], lines[0]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def fp_file(tmp_path: Path) -> Path:
    """A small valid (version-1) fingerprint file."""
    return Path(shutil.copyfile(V1, tmp_path / "tiny.mkfp"))


def registry_with(tmp_path: Path, fp_file: Path, *names: str) -> Path:
    """A registry holding ``fp_file`` under each of ``names``."""
    path = tmp_path / "reg" / "r.sqlite"
    reg = modelkin.Registry(path)
    for name in names:
        reg.add(fp_file, name)
    return path


# ---- files that are not registries ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["other_program", "other_columns", "with_trigger", "text", "newer"])
def test_a_database_that_is_not_a_registry_is_refused_and_never_modified(
    tmp_path: Path, fp_file: Path, kind: str
) -> None:
    folder = tmp_path / "foreign"
    folder.mkdir()
    db = folder / "data.sqlite"
    if kind == "text":
        db.write_text("name,value\nweights,1\n" * 200)
    else:
        con = sqlite3.connect(db)
        if kind == "other_program":
            con.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
            con.execute("INSERT INTO moz_places (url) VALUES ('https://example.org')")
            con.execute("PRAGMA user_version = 53")
        elif kind == "other_columns":
            con.execute("CREATE TABLE prints (id INTEGER, payload BLOB)")
        elif kind == "with_trigger":
            con.execute(LEGACY_SCHEMA)
            con.execute("CREATE TABLE log (x)")
            con.execute("CREATE TRIGGER t AFTER INSERT ON prints BEGIN INSERT INTO log VALUES (1); END")
        else:  # a registry of a future schema
            con.execute(LEGACY_SCHEMA)
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        con.commit()
        con.close()
    before = snapshot(folder)
    for args in (
        ("registry", "--registry", str(db), "add", str(fp_file), "--name", "x"),
        ("registry", "--registry", str(db), "add", str(fp_file), "--name", "x", "--replace"),
        ("registry", "--registry", str(db), "list"),
        ("registry", "--registry", str(db), "show", "x"),
        ("registry", "--registry", str(db), "remove", "x"),
        ("identify", str(fp_file), "--registry", str(db)),
    ):
        line = refused(cli(*args), db)
        assert ("newer modelkin" if kind == "newer" else "not a modelkin registry") in line, line
    assert snapshot(folder) == before  # not a byte changed, no journal left behind
    with pytest.raises(RegistryError, match=r"data\.sqlite"):
        modelkin.Registry(db).list()


def test_a_corrupt_registry_is_refused_with_its_name(tmp_path: Path, fp_file: Path) -> None:
    path = registry_with(tmp_path, fp_file, "a", "b", "c")
    data = path.read_bytes()
    bad = tmp_path / "corrupt.sqlite"
    bad.write_bytes(data[: len(data) // 3])
    refused(cli("registry", "--registry", str(bad), "list"), bad, "corrupt")
    refused(cli("identify", str(fp_file), "--registry", str(bad)), bad)
    zeroed = tmp_path / "zeroed.sqlite"
    zeroed.write_bytes(data[:100] + bytes(len(data) - 100))
    for args in (("list",), ("add", str(fp_file), "--name", "z"), ("show", "a")):
        refused(cli("registry", "--registry", str(zeroed), *args), zeroed)


def test_a_folder_or_an_impossible_path_as_registry_is_one_line(tmp_path: Path, fp_file: Path) -> None:
    folder = tmp_path / "a folder"
    folder.mkdir()
    for args in (
        ("registry", "--registry", str(folder), "add", str(fp_file)),
        ("registry", "--registry", str(folder), "list"),
    ):
        refused(cli(*args), folder, "is a folder")
    refused(cli("identify", str(fp_file), "--registry", str(folder)), folder, "is a folder")
    under_a_file = fp_file / "r.sqlite"
    refused(cli("registry", "--registry", str(under_a_file), "add", str(fp_file)), under_a_file, "cannot")
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_registry_is_read_but_not_written(tmp_path: Path, fp_file: Path) -> None:
    path = registry_with(tmp_path, fp_file, "a")
    path.chmod(0o444)
    before = path.read_bytes()
    assert cli("registry", "--registry", str(path), "list").returncode == 0
    refused(cli("registry", "--registry", str(path), "add", str(fp_file), "--name", "b"), path, "read-only")
    refused(cli("registry", "--registry", str(path), "remove", "a"), path, "read-only")
    assert path.read_bytes() == before


def test_a_registry_that_cannot_be_written_says_so_and_is_left_as_it_was(
    tmp_path: Path, fp_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = registry_with(tmp_path, fp_file, "a")
    before = path.read_bytes()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: mode != os.W_OK and real_access(p, mode))
    with pytest.raises(RegistryError, match=r"r\.sqlite: the registry is read-only"):
        modelkin.Registry(path).add(fp_file, "b")
    assert [e.name for e in modelkin.Registry(path).list()] == ["a"]
    assert path.read_bytes() == before


def test_a_full_disk_during_registry_add_is_one_line_and_keeps_the_registry(
    tmp_path: Path, fp_file: Path
) -> None:
    path = registry_with(tmp_path, fp_file, "a")
    before = path.read_bytes()
    size = fp_file.stat().st_size

    def small_files() -> None:  # the fingerprint's temporary copy fits, the grown registry does not
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + size // 2, resource.RLIM_INFINITY))

    res = cli("registry", "--registry", str(path), "add", str(fp_file), "--name", "b", preexec_fn=small_files)
    refused(res, path, "nothing was changed")
    assert [e.name for e in modelkin.Registry(path).list()] == ["a"]
    assert path.read_bytes() == before


# ---- registries of earlier versions, names taken, races ---------------------------------------------


def test_a_registry_written_before_the_schema_was_stamped_is_read_and_stamped_on_write(
    tmp_path: Path, fp_file: Path
) -> None:
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.execute(LEGACY_SCHEMA)
    con.execute("INSERT INTO prints VALUES ('old', 'src', '2026-01-01', 1, 21, ?)", (fp_file.read_bytes(),))
    con.commit()
    con.close()
    before = path.read_bytes()
    listed = json.loads(cli("registry", "--registry", str(path), "list", "--json").stdout)
    assert [e["name"] for e in listed] == ["old"]
    assert path.read_bytes() == before  # reading changes nothing
    assert modelkin.Registry(path).get("old").version == 1
    modelkin.Registry(path).add(fp_file, "new")
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.close()
    assert [e.name for e in modelkin.Registry(path).list()] == ["new", "old"]


def test_reading_a_registry_that_does_not_exist_creates_nothing(tmp_path: Path, fp_file: Path) -> None:
    path = tmp_path / "none" / "r.sqlite"
    assert modelkin.Registry(path).list() == []
    assert cli("registry", "--registry", str(path), "list").returncode == 0
    refused(cli("registry", "--registry", str(path), "show", "a"), path, "no entry")
    assert not path.parent.exists()


def test_adding_a_taken_name_fails_and_replace_overwrites_it(tmp_path: Path, fp_file: Path) -> None:
    path = registry_with(tmp_path, fp_file, "a")
    refused(
        cli("registry", "--registry", str(path), "add", str(fp_file), "--name", "a"),
        path,
        "already registered",
    )
    res = cli("registry", "--registry", str(path), "add", str(fp_file), "--name", "a", "--replace")
    assert res.returncode == 0, res.stderr
    assert [e.name for e in modelkin.Registry(path).list()] == ["a"]


_RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import modelkin
    from modelkin.errors import RegistryError
    reg, fp = modelkin.Registry(sys.argv[1]), modelkin.load_fingerprint(sys.argv[2])
    go, name = Path(sys.argv[3]), sys.argv[4]
    while not go.exists():
        time.sleep(0.001)
    try:
        reg.add(fp, name)
    except RegistryError as e:
        print(e)
        sys.exit(2)
    """
)


def test_two_processes_adding_one_name_at_once_exactly_one_succeeds(tmp_path: Path, fp_file: Path) -> None:
    path = registry_with(tmp_path, fp_file)  # no registry file yet: both also race to create it
    for round_ in range(3):
        go = tmp_path / f"go{round_}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _RACER, str(path), str(fp_file), str(go), f"same{round_}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        time.sleep(2.0)  # both have imported modelkin and wait
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 2], (codes, outs)
        loser = next(o for p, o in zip(procs, outs) if p.returncode == 2)
        assert "already registered" in loser[0] and "Traceback" not in loser[1], loser
    assert [e.name for e in modelkin.Registry(path).list()] == ["same0", "same1", "same2"]


# ---- registered fingerprints that do not load -------------------------------------------------------


def _put(path: Path, name: str, row: tuple[object, ...]) -> None:
    con = sqlite3.connect(path)
    con.execute("INSERT INTO prints VALUES (?, ?, ?, ?, ?, ?)", (name, *row))
    con.commit()
    con.close()


def test_a_bad_registered_fingerprint_is_named_skipped_and_the_others_answer(
    tmp_path: Path, fp_file: Path
) -> None:
    path = registry_with(tmp_path, fp_file, "good", "zgood")
    data = fp_file.read_bytes()
    _put(path, "cut", ("s", "2026", 1, 21, data[: len(data) // 2]))
    _put(path, "text", ("s", "2026", 1, 21, "not bytes"))
    _put(path, "rowtypes", ("s", "2026", "many", 21, data))
    res = cli("identify", str(fp_file), "--registry", str(path), "--json")
    assert res.returncode == 0, res.stderr
    # rowtypes cannot be listed, but its fingerprint is sound: identify uses it
    assert {m["name"] for m in json.loads(res.stdout)["matches"]} == {"good", "rowtypes", "zgood"}
    warned = res.stderr.splitlines()
    assert len(warned) == 2 and all(w.startswith("modelkin: warning: ") for w in warned), warned
    for name, line in zip(("cut", "text"), warned):
        assert f"{path}:{name}: " in line and f"modelkin registry remove {name}" in line, line
    listed = cli("registry", "--registry", str(path), "list", "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    assert [e["name"] for e in json.loads(listed.stdout)] == ["cut", "good", "zgood"]  # blobs not read
    assert "modelkin registry remove rowtypes" in listed.stderr
    assert "modelkin registry remove text" in listed.stderr
    for name in ("cut", "text"):
        refused(cli("registry", "--registry", str(path), "show", name), path, f"registry remove {name}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [n for n, _ in modelkin.Registry(path).prints()] == ["good", "rowtypes", "zgood"]
    assert [w.category for w in caught] == [RegistryWarning] * 2
    assert "cut" in str(caught[0].message) and "text" in str(caught[1].message)
    cut = tmp_path / "cut.mkfp"
    cut.write_bytes(data[: len(data) // 2])
    refused(cli("identify", str(cut), "--registry", str(path)), cut)  # the suspect first, alone
    assert cli("registry", "--registry", str(path), "remove", "cut").returncode == 0
    assert cli("registry", "--registry", str(path), "remove", "rowtypes").returncode == 0


# ---- fingerprint files ------------------------------------------------------------------------------


def _edit_header(src: Path, dst: Path, edit: object) -> Path:
    """``src`` with its fingerprint header JSON changed by ``edit(header)`` (arrays kept)."""
    from safetensors.numpy import load_file, save_file

    with open(src, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n))["__metadata__"]
    header = json.loads(meta["modelkin_fingerprint"])
    edit(header)  # type: ignore[operator]
    save_file(load_file(str(src)), str(dst), metadata={"modelkin_fingerprint": json.dumps(header)})
    return dst


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda h: h.pop("sample_size"), "sample_size"),
        (lambda h: h.pop("tensors"), "tensors"),
        (lambda h: h["tensors"][0].pop("stats"), "stats"),
        (lambda h: h["tensors"][0]["stats"].pop("m2"), "m2"),
        (lambda h: h["tensors"][0].update(shape=[128, 32]), "4096 elements"),
        (lambda h: h.update(sample_size=512), "sample"),
        (lambda h: h["tensors"][0]["stats"].update(mean=float("nan")), "mean"),
        (lambda h: h["tensors"][1].update(name=h["tensors"][0]["name"]), "twice"),
        (lambda h: h.update(sample_size="256"), "sample_size"),
        (lambda h: h.update(format="modelkin.fingerprint/9"), "format"),
    ],
)
def test_a_fingerprint_file_with_a_bad_header_is_one_line(
    tmp_path: Path, fp_file: Path, edit: object, words: str
) -> None:
    bad = _edit_header(fp_file, tmp_path / "bad.mkfp", edit)
    with pytest.raises(InvalidFingerprintError, match=r"bad\.mkfp") as e:
        modelkin.load_fingerprint(bad)
    assert words in str(e.value), e.value
    before = bad.read_bytes()
    refused(cli("identify", str(bad), "--registry", str(tmp_path / "r.sqlite")), bad, words)
    refused(cli("registry", "--registry", str(tmp_path / "r.sqlite"), "add", str(bad)), bad, words)
    assert bad.read_bytes() == before
    assert not (tmp_path / "r.sqlite").exists()


def test_a_short_sample_array_is_refused_on_load(tmp_path: Path, fp_file: Path) -> None:
    from safetensors.numpy import load_file, save_file

    with open(fp_file, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n))["__metadata__"]
    arrays = load_file(str(fp_file))
    arrays["0.sample"] = arrays["0.sample"][:100]
    bad = tmp_path / "short.mkfp"
    save_file(arrays, str(bad), metadata=meta)
    with pytest.raises(InvalidFingerprintError, match=r"short\.mkfp.*0\.sample.*100.*256"):
        modelkin.load_fingerprint(bad)
    arrays["0.sample"] = load_file(str(fp_file))["0.sample"].astype("float16")
    save_file(arrays, str(bad), metadata=meta)
    with pytest.raises(InvalidFingerprintError, match="float16"):
        modelkin.load_fingerprint(bad)
