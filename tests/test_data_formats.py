"""On-disk dataset formats: parsed pids / cameras / splits, junk and distractor rules, layout errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from reid.data import build_data, prepare_splits
from reid.data.describe import describe_splits
from reid.data.formats import detect_format
from reid.errors import ReidError
from reid.spec import DataSpec


def jpeg(path: Path, colour=(120, 60, 30), size=(16, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG")
    return path


def market_tree(root: Path, name=lambda pid, cam, j: f"{pid:04d}_c{cam}s1_{j:06d}_00.jpg") -> Path:
    for pid in (2, 7, 9):
        for j, cam in enumerate((1, 2, 1)):
            jpeg(root / "bounding_box_train" / name(pid, cam, j))
    for pid in (3, 5):
        jpeg(root / "query" / name(pid, 1, 0))
        jpeg(root / "bounding_box_test" / name(pid, 2, 1))
        jpeg(root / "bounding_box_test" / name(pid, 1, 2))
    jpeg(root / "bounding_box_test" / name(0, 3, 0).replace("0000_", "0000_"))  # distractor
    jpeg(root / "bounding_box_test" / ("-1" + name(0, 1, 5)[4:]))  # junk
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"x")
    return root


def test_market1501_parses_pids_cameras_junk_and_distractors(tmp_path):
    root = market_tree(tmp_path / "market")
    s = prepare_splits(DataSpec(dataset="market1501", root=str(root)))
    assert sorted({x.pid for x in s.train}) == [2, 7, 9] and len(s.train) == 9
    assert [(x.pid, x.camid) for x in s.query] == [(3, 0), (5, 0)]
    assert sorted({x.pid for x in s.gallery}) == [0, 3, 5]  # pid 0 distractors kept in the gallery
    assert {x.camid for x in s.gallery} == {0, 1, 2}
    assert s.skipped == {"junk images (pid -1)": 1, "non-image files": 1}
    assert detect_format(root) == "market1501"


def test_train_pids_are_relabelled(tmp_path):
    data = build_data(DataSpec(dataset="market1501", root=str(market_tree(tmp_path / "m")), height=16, width=16))
    assert data.num_classes == 3
    assert sorted(data.train.pids.unique().tolist()) == [0, 1, 2]
    assert data.query.pids.tolist() == [3, 5]  # evaluation keeps the original ids
    assert data.describe().skipped["junk images (pid -1)"] == 1


def test_dukemtmc_names(tmp_path):
    root = market_tree(tmp_path / "duke", name=lambda pid, cam, j: f"{pid:04d}_c{cam}_f{j:07d}.jpg")
    assert detect_format(root) == "dukemtmc"
    s = prepare_splits(DataSpec(dataset="dukemtmc", root=str(root)))
    assert len(s.train) == 9 and {x.camid for x in s.train} == {0, 1}


def test_cuhk03_variants(tmp_path):
    market_tree(tmp_path / "cuhk" / "labeled")
    assert detect_format(tmp_path / "cuhk") == "cuhk03"
    s = prepare_splits(DataSpec(dataset="cuhk03", root=str(tmp_path / "cuhk"), cuhk03_variant="labeled"))
    assert s.name == "cuhk03-labeled" and len(s.query) == 2
    with pytest.raises(ReidError, match="expected sub-folder detected/"):
        prepare_splits(DataSpec(dataset="cuhk03", root=str(tmp_path / "cuhk")))


def test_msmt17_lists_and_cameras(tmp_path):
    root = tmp_path / "msmt"
    lists = {"list_train.txt": ("train", [0, 1]), "list_val.txt": ("train", [2]), "list_query.txt": ("test", [0]), "list_gallery.txt": ("test", [0, 1])}
    for list_name, (folder, pids) in lists.items():
        lines = []
        for pid in pids:
            for cam in (1, 5):
                rel = f"{pid:04d}/{pid:04d}_{cam:03d}_{cam:02d}_0303morning_0015_0.jpg"
                jpeg(root / folder / rel)
                lines.append(f"{rel} {pid}")
        (root / list_name).write_text("\n".join(lines) + "\n")
    assert detect_format(root) == "msmt17"
    s = prepare_splits(DataSpec(dataset="msmt17", root=str(root)))
    assert sorted({x.pid for x in s.train}) == [0, 1, 2]  # train + val
    assert {x.camid for x in s.train} == {0, 4}
    (root / "list_query.txt").write_text("just-one-field\n")
    with pytest.raises(ReidError, match=r"list_query.txt:1.*path pid"):
        prepare_splits(DataSpec(dataset="msmt17", root=str(root)))


def folder_tree(root: Path, ids=8, per_id=4) -> Path:
    for i in range(ids):
        for j in range(per_id):
            jpeg(root / f"person{i:02d}" / f"img{j}_cam{j % 2 + 1}.jpg")
    return root


def test_folder_layout_split_by_count_and_fraction(tmp_path):
    root = folder_tree(tmp_path / "f")
    (root / "empty_person").mkdir()
    (root / "person00" / "notes.txt").write_text("x")
    s = prepare_splits(DataSpec(dataset="folder", root=str(root), train_ids=5, camera_regex=r"cam(\d+)"))
    assert len({x.pid for x in s.train}) == 5 and len({x.pid for x in s.query}) == 3
    assert {x.pid for x in s.train}.isdisjoint({x.pid for x in s.query + s.gallery})
    # per_camera: one query per identity and camera, the rest in the gallery
    assert len(s.query) == 3 * 2 and len(s.gallery) == 3 * 2
    assert s.skipped == {"empty identity folders": 1, "non-image files": 1}
    f = prepare_splits(DataSpec(dataset="folder", root=str(root), train_fraction=0.25))
    assert len({x.pid for x in f.train}) == 2
    counted = prepare_splits(DataSpec(dataset="folder", root=str(root), train_ids=5, train_fraction=0.25))
    assert {x.pid for x in counted.train} == {x.pid for x in s.train}  # a count wins over the fraction
    again = prepare_splits(DataSpec(dataset="folder", root=str(root), train_ids=5, camera_regex=r"cam(\d+)"))
    assert again.train == s.train  # fixed split_seed → same split
    other = prepare_splits(DataSpec(dataset="folder", root=str(root), train_ids=5, split_seed=3))
    assert {x.pid for x in other.train} != {x.pid for x in s.train}
    ordered = prepare_splits(DataSpec(dataset="folder", root=str(root), train_ids=5, split_order="sorted"))
    assert sorted({Path(x.path).parent.name for x in ordered.train}) == [f"person{i:02d}" for i in range(5)]
    assert sorted({Path(x.path).parent.name for x in ordered.query}) == ["person05", "person06", "person07"]


def test_folder_leave_one_out_without_cameras(tmp_path):
    root = folder_tree(tmp_path / "f", ids=10, per_id=3)
    s = prepare_splits(DataSpec(dataset="folder", root=str(root), train_ids=6, query_rule="leave_one_out"))
    assert s.same_set and s.query == s.gallery and len(s.query) == 4 * 3
    d = describe_splits(s)
    assert d.protocol == "all" and d.validation_identities == 4 and d.num_classes == 6


def test_folder_regex_errors(tmp_path):
    root = folder_tree(tmp_path / "f")
    with pytest.raises(ReidError, match="exactly one"):
        prepare_splits(DataSpec(dataset="folder", root=str(root), train_ids=4, camera_regex=r"(c)(\d)"))
    with pytest.raises(ReidError, match=r"img0_cam1.jpg.*does not match"):
        prepare_splits(DataSpec(dataset="folder", root=str(root), train_ids=4, camera_regex=r"_c(\d+)_"))
    with pytest.raises(ReidError, match="only 8 identities"):
        prepare_splits(DataSpec(dataset="folder", root=str(root), train_ids=230))


def test_layout_errors_name_expected_and_found(tmp_path):
    with pytest.raises(ReidError, match="does not exist"):
        prepare_splits(DataSpec(dataset="market1501", root=str(tmp_path / "missing")))
    (tmp_path / "m" / "query").mkdir(parents=True)
    (tmp_path / "m" / "images").mkdir()
    with pytest.raises(ReidError, match=r"missing bounding_box_train, bounding_box_test; found images, query"):
        prepare_splits(DataSpec(dataset="market1501", root=str(tmp_path / "m")))
    root = market_tree(tmp_path / "bad")
    jpeg(root / "query" / "person_one.jpg")
    with pytest.raises(ReidError, match=r"person_one.jpg: cannot parse the identity"):
        prepare_splits(DataSpec(dataset="market1501", root=str(root)))
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.txt").write_text("x")
    with pytest.raises(ReidError, match="unknown dataset layout"):
        detect_format(tmp_path / "flat")


def test_limit_ids_keeps_first_training_identities(tmp_path):
    s = prepare_splits(DataSpec(dataset="market1501", root=str(market_tree(tmp_path / "m")), limit_ids=2))
    assert sorted({x.pid for x in s.train}) == [2, 7]


def test_a_folder_of_62_identities_splits_with_no_settings(tmp_path):
    root = folder_tree(tmp_path / "f", ids=62, per_id=2)
    s = prepare_splits(DataSpec(dataset="folder", root=str(root)))  # default: train_fraction 0.8
    assert len({x.pid for x in s.train}) == 50 and len({x.pid for x in s.query}) == 12
    assert not s.same_set


def test_own_split_is_kept_unless_merging_is_asked_for_by_name(tmp_path, caplog):
    root = str(market_tree(tmp_path / "m"))
    own = prepare_splits(DataSpec(dataset="market1501", root=root))
    kept = prepare_splits(DataSpec(dataset="market1501", root=root, query_rule="leave_one_out"))
    assert not kept.same_set and (kept.query, kept.gallery) == (own.query, own.gallery)
    assert 'keeps its own query / gallery' in caplog.text and "leave_one_out_merged" in caplog.text
    caplog.clear()
    merged = prepare_splits(DataSpec(dataset="market1501", root=root, query_rule="leave_one_out_merged"))
    assert merged.same_set and len(merged.query) == len(own.query) + len(own.gallery)
    assert "WARNING" in caplog.text and "from market to all" in caplog.text
    caplog.clear()
    folder = prepare_splits(DataSpec(dataset="folder", root=str(folder_tree(tmp_path / "f")), query_rule="leave_one_out"))
    assert folder.same_set and caplog.text == ""  # a split the format made: merged, as asked, silently


def test_the_cuhk03_spec_reads_the_real_crops_layout_with_its_fixed_split(tmp_path):
    """specs/cuhk03.toml on a tree named as ../shared/real/cuhk03 (PPPP/PPPP_cC_KK.jpg): only data.root changes
    (and here the split's size, for 12 identities instead of 843)."""
    from reid.spec import load_spec

    for pid in range(12):
        for cam, k in ((1, 1), (1, 2), (2, 3), (2, 4)):
            jpeg(tmp_path / f"{pid:04d}" / f"{pid:04d}_c{cam}_{k:02d}.jpg")
    spec = load_spec(Path(__file__).resolve().parents[1] / "specs" / "cuhk03.toml",
                     overrides=[f"data.root={tmp_path}", "data.train_ids=9"])
    s = prepare_splits(spec.data)
    assert sorted({Path(x.path).parent.name for x in s.train}) == [f"{i:04d}" for i in range(9)]
    assert sorted({Path(x.path).parent.name for x in s.query}) == ["0009", "0010", "0011"]
    assert len(s.query) == 3 * 2 and len(s.gallery) == 3 * 2 and {x.camid for x in s.query} == {0, 1}
