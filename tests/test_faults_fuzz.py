"""Input fuzzing with numbers: generated spec files, ``--set`` values and image folders through the CLI.

Every case must end in exit 0, or exit 2 with exactly one ``error:`` line — never a traceback. The cases run
and how they ended are counted (and recorded for BENCHMARKS.md's "What reid survives", see fault_log.py).
"""

from __future__ import annotations

import io
import os
import shutil
import warnings
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fault_log import record
from reid.spec import Spec

def fuzz(examples: int) -> settings:
    """Fixed examples (derandomized: the counts are the same on every run), no deadline."""
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                    database=None)


def _shown(cli, *args) -> tuple[int, str, str]:
    """``cli(*args)``, with the Python warnings a user would see on stderr added to stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = cli(*args)
    hidden = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
    return code, out, err + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught
                                    if not issubclass(w.category, hidden))


def _outcome(code, out: str, err: str, counts: Counter) -> None:
    """Assert the contract and count the outcome."""
    assert "Traceback" not in out + err, out + err
    assert "DecompressionBomb" not in err, err
    assert code in (0, 2), (code, out, err)
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and not err.replace(errors[0], "").strip(), err
    counts[f"exit {code}"] += 1


def _dotted_keys(model: type, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        key = prefix + (field.alias or name)
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            keys += _dotted_keys(sub, key + ".")
        else:
            keys.append(key)
    return keys


KEYS = _dotted_keys(Spec)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` pixels and whose data is a few bytes (cheap to make)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _encoded(mode: str, size: tuple[int, int], fmt: str, color=100) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, fmt)
    return buf.getvalue()


GOOD_JPEG = _encoded("RGB", (16, 32), "JPEG", (200, 30, 40))
GOOD_PNG = _encoded("RGB", (16, 32), "PNG", (20, 130, 40))

#: name → (file name, how to make it in a folder)
def _bytes(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


def _symlink_loop(folder: Path) -> None:
    (folder / "a.jpg").symlink_to(folder / "b.jpg")
    (folder / "b.jpg").symlink_to(folder / "a.jpg")


def _dir_loop(folder: Path) -> None:
    (folder / "loop").symlink_to(folder, target_is_directory=True)


def _unreadable(folder: Path) -> None:
    path = folder / "locked.jpg"
    path.write_bytes(GOOD_JPEG)
    path.chmod(0)


BAD_FILES = {
    "zero-byte": _bytes("empty.jpg", b""),
    "truncated JPEG": _bytes("cut.jpg", GOOD_JPEG[: len(GOOD_JPEG) // 2]),
    "truncated PNG": _bytes("cut.png", GOOD_PNG[: len(GOOD_PNG) // 2]),
    "CMYK JPEG": _bytes("cmyk.jpg", _encoded("CMYK", (16, 32), "JPEG", (10, 20, 30, 40))),
    "16-bit PNG": _bytes("deep.png", _encoded("I;16", (16, 32), "PNG", 40000)),
    "palette PNG": _bytes("palette.png", _encoded("P", (16, 32), "PNG", 7)),
    "palette PNG with transparency": lambda f: Image.new("P", (16, 32), 3).save(f / "ptrans.png", transparency=3),
    "1x1": _bytes("dot.jpg", _encoded("RGB", (1, 1), "JPEG")),
    "10,000x10,000 header": _bytes("huge.png", _png_header_only(10_000, 10_000)),
    "10,000x10,000 image (1-bit)": _bytes("big.png", _encoded("1", (10_000, 10_000), "PNG", 1)),
    "30,000x30,000 header (bomb)": _bytes("bomb.png", _png_header_only(30_000, 30_000)),
    "PNG named .jpg": _bytes("png.jpg", GOOD_PNG),
    "text named .jpg": _bytes("text.jpg", b"not an image at all\n"),
    "JPEG named .txt": _bytes("photo.txt", GOOD_JPEG),
    "symlink loop": _symlink_loop,
    "directory symlink loop": _dir_loop,
    "dangling symlink": lambda f: (f / "gone.jpg").symlink_to(f / "nowhere.jpg"),
    "directory named .jpg": lambda f: (f / "dir.jpg").mkdir(),
    "unreadable file": _unreadable,
    "unicode name": _bytes("p\u00e9rson\U0001f642.jpg", GOOD_JPEG),
    "non-UTF-8 name": lambda f: Path(os.fsdecode(os.fsencode(f) + b"/\xff\xfe.jpg")).write_bytes(GOOD_JPEG),
    "hidden file": _bytes(".hidden.jpg", b"garbage"),
}


def _folder(root: Path, bad: list[tuple[str, int]]) -> Path:
    """Three identities × two good images, plus the ``bad`` kinds placed in identity folder ``i``."""
    if root.exists():
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                path.chmod(0o644)
        shutil.rmtree(root)
    for pid in range(3):
        person = root / f"person{pid}"
        person.mkdir(parents=True)
        for k in range(2):
            (person / f"cam{k}_{pid}{k}.jpg").write_bytes(GOOD_JPEG)
    for kind, where in bad:
        target = root / f"person{where % 3}"
        try:
            BAD_FILES[kind](target)
        except FileExistsError:
            pass
    return root


@pytest.fixture(scope="module")
def tiny_run(module_tmp_path) -> Path:
    """A run directory with an untrained tiny model (no training: enough for `reid embed`)."""
    from reid.engine.checkpoint import model_checkpoint, model_description, save_checkpoint
    from reid.model import build_model
    from reid.spec import load_spec_text

    text = 'name = "fuzz"\n[data]\nheight = 32\nwidth = 16\n[model]\nlayers = [1, 1, 1, 1]\n[eval]\nbatch_size = 4\n'
    spec = load_spec_text(text)
    run = module_tmp_path / "run"
    model = build_model(spec.model, spec.head, num_classes=3, input_size=(3, 32, 16))
    save_checkpoint(model_checkpoint(model_description(spec, model), model, {}), run / "checkpoints" / "best.pt")
    (run / "spec.toml").write_text(spec.to_toml())
    return run


@pytest.mark.slow
def test_every_bad_file_kind_once_through_data_info_and_embed(tmp_path, cli, tiny_run):
    counts = Counter()
    for kind in BAD_FILES:
        folder = _folder(tmp_path / "imgs", [(kind, 0)])
        _outcome(*_shown(cli, "data", "info", folder, "--dataset", "folder"), counts)
        _outcome(*_shown(cli, "embed", tiny_run, folder, "-o", tmp_path / "f.safetensors", "--device", "cpu", "--plain"), counts)
        for cache in ("memory", "stream"):  # decoding for training: the decoded cache, or header checks when streaming
            _outcome(*_shown(cli, "data", "baseline", folder, "--dataset", "folder", "--plain", "--set", "data.height=32",
                             "--set", "data.width=16", "--set", f"data.cache={cache}"), counts)
    record("fuzz-images-each", "each kind of bad image file once", f"{len(BAD_FILES)} kinds × `reid data info`, "
           "`reid embed`, `reid data baseline` (cached and streamed)", sum(counts.values()),
           f"exit 0 or exit 2 with one `error:` line ({_summary(counts)})")


def _summary(counts: Counter) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def test_folders_with_random_bad_files(tmp_path, cli, tiny_run):
    counts = Counter()
    kinds = sorted(BAD_FILES)

    @fuzz(40)
    @given(bad=st.lists(st.tuples(st.sampled_from(kinds), st.integers(0, 2)), max_size=4),
           command=st.sampled_from(["info", "embed", "memory", "stream"]))
    def case(bad, command):
        folder = _folder(tmp_path / "imgs", bad)
        if command == "embed":
            args = ["embed", tiny_run, folder, "-o", tmp_path / "f.safetensors", "--device", "cpu", "--plain"]
        elif command == "info":
            args = ["data", "info", folder, "--dataset", "folder"]
        else:
            args = ["data", "baseline", folder, "--dataset", "folder", "--plain", "--set", "data.height=32", "--set",
                    "data.width=16", "--set", f"data.cache={command}"]
        _outcome(*_shown(cli, *args), counts)

    case()
    record("fuzz-images", "image folders with random bad files", "0–4 bad files of the kinds above; `data info`, "
           "`embed`, `data baseline` (hypothesis)",
           sum(counts.values()), f"exit 0 or exit 2 with one `error:` line ({_summary(counts)})")


# -- specs and --set -------------------------------------------------------------------------------

WEIRD_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
SCALARS = st.one_of(
    st.integers(-3, 3), st.integers(min_value=-(10**30), max_value=10**30), st.just(2**63), st.just(-(2**63) - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), WEIRD_TEXT,
    st.sampled_from(["", "[]", "{}", "[1, 2]", "1e400", "nan", "-inf", "true", "none", "null", "0x10", "=", "'a",
                     '"unterminated', "1_000", "[[1]]", "{a = 1}", "\u2603", "a" * 5000]),
)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v).replace("inf", "inf").replace("nan", "nan")
    return v if isinstance(v, str) and v[:1] in "[{\"'" else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


KEY = st.one_of(st.sampled_from(KEYS), WEIRD_TEXT, st.sampled_from(["data.", ".", "data..root", "nosuch.key", "seed.x"]))
OVERRIDE = st.one_of(st.tuples(KEY, SCALARS).map(lambda kv: f"{kv[0]}={kv[1]}"), WEIRD_TEXT)


def _base_spec(folder: Path) -> str:
    return f'name = "fuzz"\n[data]\ndataset = "folder"\nroot = "{folder}"\nheight = 32\nwidth = 16\n'


LINES = st.one_of(
    st.tuples(KEY, SCALARS).map(lambda kv: f"{kv[0].rpartition('.')[2] or kv[0]} = {_toml_value(kv[1])}"),
    st.sampled_from(["[data]", "[model]", "[nosuch]", "[]", "[data.x]", "[[data]]", "seed = 1", "seed = 1",
                     "name = 3", "[eval]", "[runtime]", "\ufeff", "\x00", "[data]\nroot = 3"]),
    WEIRD_TEXT,
)


@pytest.fixture(scope="module")
def spec_folder(tmp_path_factory) -> Path:
    return _folder(tmp_path_factory.mktemp("specdata") / "imgs", [])


def test_generated_specs_and_overrides(tmp_path, cli, spec_folder):
    counts = Counter()
    spec = tmp_path / "fuzz.toml"

    @fuzz(120)
    @given(lines=st.lists(LINES, max_size=5), overrides=st.lists(OVERRIDE, max_size=3), raw=st.booleans(),
           blob=st.binary(max_size=40))
    def case(lines, overrides, raw, blob):
        text = _base_spec(spec_folder) + "\n".join(lines) + "\n"
        spec.write_bytes(blob if raw and not lines else text.encode("utf-8", "surrogatepass"))
        args = [a for o in overrides for a in ("--set", o)]
        _outcome(*_shown(cli, "data", "info", spec, *args), counts)

    case()
    record("fuzz-specs", "generated spec files and `--set` values", "wrong types, out-of-range and huge numbers, "
           "unknown keys, unicode, empty tables, duplicate keys, binary files (hypothesis; `reid data info`)",
           sum(counts.values()), f"exit 0 or exit 2 with one `error:` line ({_summary(counts)})")
