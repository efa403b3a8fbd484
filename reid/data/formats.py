"""On-disk re-ID dataset formats, each validated on load, and the ``DATASETS`` registry.

Every format is a function ``(spec: DataSpec, cache_dir: Path) -> Splits`` registered under
the name ``data.dataset`` uses. A :class:`Splits` holds lists of :class:`Sample` (path,
pid, camera) for train / query / gallery with original pids (relabelling happens in
:func:`reid.data.build.build_data`) and counts of what was skipped and why.

Rules shared by the Market-style layouts (Market-1501, DukeMTMC-reID, CUHK03-NP):
file names start ``<pid>_c<camera>``; pid ``-1`` (junk) is dropped and counted; pid ``0``
(distractors) is kept in the gallery; cameras are renumbered from 0. Files that are not
images (by extension) are skipped and counted; image files whose name does not parse
raise :class:`ReidError` naming the file.

Example:
    >>> DATASETS.names()
    ['cuhk03', 'dukemtmc', 'folder', 'market1501', 'msmt17', 'synthetic']
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from reid.errors import ReidError
from reid.registry import DATASETS
from reid.spec import DataSpec

#: File extensions read as images (case-insensitive); anything else is skipped and counted.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

MARKET_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")
_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)(?=\D)")


@dataclass(frozen=True)
class Sample:
    """One image: its path, identity and camera (0-based; 0 for data without cameras)."""

    path: str
    pid: int
    camid: int


@dataclass
class Splits:
    """The parsed samples of a dataset, before relabelling and decoding.

    ``same_set`` means query and gallery are one set (leave-one-out validation).
    ``skipped`` counts what was left out, by reason (e.g. ``"junk (pid -1)"``).
    ``own_split`` means query and gallery are the dataset's own (Market-1501 …), kept unless
    ``data.query_rule = "leave_one_out_merged"``; ``False`` where the format made them from
    ``data.query_rule`` (folder, synthetic), which ``leave_one_out`` may then merge.
    """

    name: str
    root: Path
    train: list[Sample]
    query: list[Sample]
    gallery: list[Sample]
    same_set: bool = False
    skipped: Counter = field(default_factory=Counter)
    own_split: bool = True


DatasetFactory = Callable[[DataSpec, Path], Splits]


def market_name_labels(name: str) -> tuple[int, int] | None:
    """``(pid, 0-based camera)`` from a Market-style file name (``0002_c1s1_000451_03.jpg``), else ``None``.

    Example:
        >>> market_name_labels("0002_c3s1_000451_03.jpg"), market_name_labels("photo.jpg")
        ((2, 2), None)
    """
    m = _MARKET_NAME.match(name)
    if m is None or int(m.group(2)) < 1:
        return None
    return int(m.group(1)), int(m.group(2)) - 1


def is_image_file(path: Path) -> bool:
    """Whether ``path`` has an image extension (and is not a hidden file)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def require_root(spec: DataSpec) -> Path:
    """``data.root`` as an existing directory, or a :class:`ReidError` saying what to set."""
    if not spec.root:
        raise ReidError(f"data.root is not set for dataset {spec.dataset!r}", where="data.root", fix="set data.root to the dataset folder")
    root = Path(spec.root).expanduser()
    if not root.exists():
        raise ReidError("dataset folder does not exist", where=f"data.root={root}", fix="check the path (is the dataset downloaded and unpacked?)")
    if not root.is_dir():
        raise ReidError("dataset root is a file, not a folder", where=f"data.root={root}", fix="point data.root at the folder that holds the dataset")
    return root


def _listing(root: Path) -> str:
    found = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    return ", ".join(found[:12]) + (" …" if len(found) > 12 else "") if found else "nothing"


def require_folders(root: Path, folders: tuple[str, ...], layout: str) -> None:
    """Raise a :class:`ReidError` listing expected and found folders unless all exist."""
    missing = [f for f in folders if not (root / f).is_dir()]
    if missing:
        raise ReidError(
            f"not a {layout} folder: expected sub-folders {', '.join(folders)}; missing {', '.join(missing)}; found {_listing(root)}",
            where=str(root),
            fix=f"point data.root at the unpacked {layout} folder, or pick the right data.dataset / --format",
        )


def _images_in(folder: Path, skipped: Counter) -> list[Path]:
    files = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and is_image_file(p):
            files.append(p)
        elif p.is_file():
            skipped["non-image files"] += 1
    return files


def parse_market_folder(folder: Path, skipped: Counter, layout: str, keep_distractors: bool) -> list[Sample]:
    """Samples of one Market-style folder (``<pid>_c<cam>...`` names; cameras 1-based on disk)."""
    samples = []
    for p in _images_in(folder, skipped):
        m = _MARKET_NAME.match(p.name)
        if m is None:
            raise ReidError(
                f"cannot parse the identity and camera from the file name (expected {layout} names like "
                f"{'0002_c1s1_000451_03.jpg' if layout != 'DukeMTMC-reID' else '0001_c2_f0046182.jpg'})",
                where=str(p),
                fix="rename or remove the file, or use data.dataset = \"folder\" for folder-per-identity data",
            )
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid == -1:
            skipped["junk images (pid -1)"] += 1
            continue
        if pid == 0 and not keep_distractors:
            skipped["distractors outside the gallery (pid 0)"] += 1
            continue
        if cam < 1:
            raise ReidError(f"camera number {cam} in the file name; cameras start at 1", where=str(p), fix="rename or remove the file")
        samples.append(Sample(str(p), pid, cam - 1))
    return samples


def parse_market_layout(root: Path, name: str, layout: str) -> Splits:
    """Parse ``bounding_box_train/``, ``query/`` and ``bounding_box_test/`` under ``root``."""
    require_folders(root, MARKET_FOLDERS, layout)
    skipped: Counter = Counter()
    train = parse_market_folder(root / "bounding_box_train", skipped, layout, keep_distractors=False)
    query = parse_market_folder(root / "query", skipped, layout, keep_distractors=False)
    gallery = parse_market_folder(root / "bounding_box_test", skipped, layout, keep_distractors=True)
    for split, items in (("bounding_box_train", train), ("query", query), ("bounding_box_test", gallery)):
        if not items:
            raise ReidError(f"no usable images in {split}/", where=str(root / split), fix="check that the dataset was unpacked completely")
    return Splits(name, root, train, query, gallery, skipped=skipped)


@DATASETS.register("market1501")
def market1501(spec: DataSpec, cache_dir: Path) -> Splits:
    """Market-1501: ``bounding_box_train/``, ``query/``, ``bounding_box_test/``; names ``0002_c1s1_000451_03.jpg``."""
    return parse_market_layout(require_root(spec), "market1501", "Market-1501")


@DATASETS.register("dukemtmc")
def dukemtmc(spec: DataSpec, cache_dir: Path) -> Splits:
    """DukeMTMC-reID: the Market layout with names like ``0001_c2_f0046182.jpg``."""
    return parse_market_layout(require_root(spec), "dukemtmc", "DukeMTMC-reID")


@DATASETS.register("cuhk03")
def cuhk03(spec: DataSpec, cache_dir: Path) -> Splits:
    """CUHK03-NP: ``detected/`` or ``labeled/`` (``data.cuhk03_variant``), each in the Market layout."""
    root = require_root(spec)
    variant = root / spec.cuhk03_variant
    if not variant.is_dir():
        raise ReidError(
            f"not a CUHK03-NP folder: expected sub-folder {spec.cuhk03_variant}/ (or detected/, labeled/); found {_listing(root)}",
            where=str(root),
            fix="point data.root at the cuhk03-np folder, or set data.cuhk03_variant",
        )
    return parse_market_layout(variant, f"cuhk03-{spec.cuhk03_variant}", "CUHK03-NP")


MSMT_LISTS = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")


def msmt17_camera(relpath: str) -> int:
    """Camera (0-based) of an MSMT17 image: the 3rd ``_`` field of ``0000_000_01_0303morning_0015_0.jpg``.

    MSMT17 V1 names drop the leading pid (``0000/000_01_0303morning_0015_0.jpg``): then it is the 2nd.

    Example:
        >>> msmt17_camera("0000_000_01_0303morning_0015_0.jpg"), msmt17_camera("0000/000_15_0303noon_0015_0.jpg")
        (0, 14)
    """
    parts = relpath.replace("\\", "/").rsplit("/", 1)[-1].split("_")
    return int(parts[2] if len(parts) >= 6 else parts[1]) - 1


def _read_msmt_list(root: Path, list_name: str, skipped: Counter) -> list[Sample]:
    list_path = root / list_name
    lines = list_path.read_text(encoding="utf-8", errors="replace").splitlines()
    entries = [(i, ln.split()) for i, ln in enumerate(lines, 1) if ln.strip()]
    base = root
    split_dirs = ("train", "mask_train_v2") if list_name in ("list_train.txt", "list_val.txt") else ("test", "mask_test_v2")
    if entries:
        first = entries[0][1][0]
        for d in split_dirs:
            if (root / d / first).is_file():
                base = root / d
    samples = []
    for i, parts in entries:
        where = f"{list_path}:{i}"
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ReidError(f"expected a line 'path pid', found {' '.join(parts)!r}", where=where, fix="repair or re-download the list file")
        rel, pid = parts[0], int(parts[1])
        path = base / rel
        if not is_image_file(path):
            skipped["non-image files"] += 1
            continue
        if not path.is_file():
            raise ReidError(f"listed image {rel} not found under {base}", where=where, fix="check that the images were unpacked next to the list files")
        try:
            cam = msmt17_camera(rel)
        except (IndexError, ValueError):
            raise ReidError(
                "cannot parse the camera from the file name (expected names like 0000_000_01_0303morning_0015_0.jpg)",
                where=where,
                fix="repair the list file",
            ) from None
        samples.append(Sample(str(path), pid, cam))
    return samples


@DATASETS.register("msmt17")
def msmt17(spec: DataSpec, cache_dir: Path) -> Splits:
    """MSMT17: list files ``list_{train,val,query,gallery}.txt`` of ``path pid`` lines.

    Training uses train + val (the usual protocol); images are looked up under
    ``train/`` / ``test/`` (V1), ``mask_train_v2/`` / ``mask_test_v2/`` (V2) or the root.
    """
    root = require_root(spec)
    missing = [f for f in MSMT_LISTS if not (root / f).is_file()]
    if missing:
        raise ReidError(
            f"not an MSMT17 folder: expected list files {', '.join(MSMT_LISTS)}; missing {', '.join(missing)}; found {_listing(root)}",
            where=str(root),
            fix="point data.root at the unpacked MSMT17 folder",
        )
    skipped: Counter = Counter()
    train = _read_msmt_list(root, "list_train.txt", skipped) + _read_msmt_list(root, "list_val.txt", skipped)
    query = _read_msmt_list(root, "list_query.txt", skipped)
    gallery = _read_msmt_list(root, "list_gallery.txt", skipped)
    return Splits("msmt17", root, train, query, gallery, skipped=skipped)


def _camera_parser(regex: str | None) -> Callable[[Path], int | str]:
    if regex is None:
        return lambda p: 0
    try:
        pattern = re.compile(regex)
    except re.error as e:
        raise ReidError(f"invalid regular expression ({e})", where=f"data.camera_regex={regex!r}") from None
    if pattern.groups != 1:
        raise ReidError(
            f"the regex has {pattern.groups} capture groups; it needs exactly one (the camera id)",
            where=f"data.camera_regex={regex!r}",
            fix=r"e.g. '_c(\d+)_' for names like 0001_c2_0001.jpg",
        )

    def camera(p: Path) -> str:
        m = pattern.search(p.name)
        if m is None:
            raise ReidError(
                f"data.camera_regex {regex!r} does not match the file name",
                where=str(p),
                fix="fix the regex (it is searched in the file name), rename the file, or unset data.camera_regex",
            )
        return m.group(1)

    return camera


def scan_folder_identities(root: Path, camera_regex: str | None) -> tuple[list[Sample], Counter]:
    """Samples of a ``root/<identity>/<image>`` tree; pids number the sorted identity folders from 0.

    Camera ids come from ``camera_regex`` (one capture group, searched in the file name),
    renumbered from 0 in sorted order; without a regex every image has camera 0.
    Empty identity folders and non-image files are skipped and counted.
    """
    camera_of = _camera_parser(camera_regex)
    skipped: Counter = Counter()
    idents = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for p in root.iterdir():
        if p.is_file():
            skipped["files outside identity folders"] += 1
    raw: list[tuple[Path, int, int | str]] = []
    pid = 0
    for ident in idents:
        files = _images_in(ident, skipped)
        if not files:
            skipped["empty identity folders"] += 1
            continue
        raw.extend((f, pid, camera_of(f)) for f in files)
        pid += 1
    if not raw:
        raise ReidError(
            f"no identity folders with images: expected root/<identity>/<image>; found {_listing(root)}",
            where=str(root),
            fix="point data.root at a folder with one sub-folder of images per identity, or pick another data.dataset / --format",
        )
    cams = sorted({c for _, _, c in raw}, key=lambda c: (len(str(c)), str(c)))
    cam_index = {c: i for i, c in enumerate(cams)}
    return [Sample(str(f), p, cam_index[c]) for f, p, c in raw], skipped


def query_gallery_split(samples: list[Sample], seed: int) -> tuple[list[Sample], list[Sample]]:
    """Validation samples into (query, gallery): per identity one query image per camera, the rest gallery
    (see :func:`reid.data.split.per_camera_query`)."""
    from reid.data.split import per_camera_query

    query_idx: set[int] = set()
    by_pid: dict[int, list[tuple[int, int]]] = {}
    for i, s in enumerate(samples):
        by_pid.setdefault(s.pid, []).append((i, s.camid))
    for pid, items in by_pid.items():
        query_idx.update(per_camera_query(items, seed=seed * 100_003 + pid))
    return [s for i, s in enumerate(samples) if i in query_idx], [s for i, s in enumerate(samples) if i not in query_idx]


@DATASETS.register("folder")
def folder(spec: DataSpec, cache_dir: Path) -> Splits:
    """Folder per identity (``root/<identity>/<image>``), split by identity with ``data.train_ids`` /
    ``data.train_fraction`` (default 0.8) and ``data.split_seed``; validation query / gallery one image
    per identity and camera (``data.query_rule`` may then merge them: see :func:`reid.data.build.prepare_splits`)."""
    from reid.data.split import split_identities

    root = require_root(spec)
    samples, skipped = scan_folder_identities(root, spec.camera_regex)
    train_pids, val_pids = split_identities([s.pid for s in samples], spec.train_ids, spec.train_fraction,
                                            spec.split_seed, ordered=spec.split_order == "sorted")
    train_set = set(train_pids)
    train = [s for s in samples if s.pid in train_set]
    query, gallery = query_gallery_split([s for s in samples if s.pid not in train_set], spec.split_seed)
    return Splits("folder", root, train, query, gallery, skipped=skipped, own_split=False)


@DATASETS.register("synthetic")
def synthetic(spec: DataSpec, cache_dir: Path) -> Splits:
    """Synthetic pedestrians rendered once into ``cache_dir/synthetic/<key>`` (Market layout), then parsed.

    The key holds the renderer version and every parameter that changes the files
    (identities, images, cameras, seed, size, split); generation writes to a temporary
    folder renamed into place, so a killed run leaves no half cache.
    """
    from reid.data.synthetic import SynthParams, write_market_layout

    params = SynthParams(spec.identities, spec.images_per_identity, spec.cameras, spec.synth_seed, (spec.height, spec.width),
                         spec.synth_version)
    split = f"t{spec.train_ids}" if spec.train_ids is not None else f"f{spec.train_fraction}"
    target = Path(cache_dir) / "synthetic" / f"{params.key()}-{split}-ss{spec.split_seed}"
    if not target.is_dir():
        try:
            write_market_layout(target, params, spec.train_ids, spec.train_fraction, spec.split_seed)
        except (OSError, ReidError) as e:
            if not target.is_dir():  # another process (e.g. another rank) may have renamed its copy into place first
                raise ReidError(f"cannot write the synthetic dataset cache ({e})", where=str(target), fix="set $REID_CACHE to a writable folder") from None
    return replace(parse_market_layout(target, "synthetic", "Market-1501"), own_split=False)


def detect_format(root: Path) -> str:
    """Guess the dataset format of a folder: ``market1501``, ``dukemtmc``, ``cuhk03``, ``msmt17`` or ``folder``.

    Raises:
        ReidError: the folder is missing or matches no layout.
    """
    if not root.is_dir():
        raise ReidError("no such folder", where=str(root), fix="give a dataset folder or a .toml spec")
    if all((root / f).is_dir() for f in MARKET_FOLDERS):
        names = [p.name for p in (root / "bounding_box_train").iterdir() if is_image_file(p)][:20]
        return "dukemtmc" if names and all(re.match(r"^-?\d+_c\d+_f\d+", n) for n in names) else "market1501"
    if (root / "detected").is_dir() or (root / "labeled").is_dir():
        return "cuhk03"
    if (root / "list_train.txt").is_file():
        return "msmt17"
    if any(p.is_dir() for p in root.iterdir()):
        return "folder"
    raise ReidError(
        f"unknown dataset layout; found {_listing(root)}",
        where=str(root),
        fix="expected Market-1501 (bounding_box_train/, query/, bounding_box_test/), CUHK03-NP (detected/ or labeled/), "
        "MSMT17 (list_*.txt) or one folder per identity; or pass --format",
    )
