"""The harder synthetic renderers (version 2, and version 3, the default): determinism, near-duplicate
identities, viewpoints, difficulty, and the pixels of earlier versions left untouched."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid.data import build_data
from reid.data.baseline import run_baseline
from reid.data.synthetic import (
    BODY, FAMILY_SIZE, OUTFIT_CHANGES, OUTFITS, PROFILE_V3, SynthParams, make_camera_v2, make_person_v2, make_person_v3,
    outfit_of, render_image_v2, scene_props, visible_changes, write_market_layout,
)
from reid.errors import ReidError
from reid.spec import DataSpec

SMALL_V2 = SynthParams(identities=12, images_per_identity=4, cameras=2, seed=0, size=(64, 64), version=2)
#: sha256 over (relative path, bytes) of every file of the tiny version-1 set below, computed
#: before version 2 existed: version 1 must keep rendering these exact bytes.
V1_TINY_DIGEST = "47ef5cbcb5d68a17689f1eff5f93159778c2881aeda2d656d725abbfdbd62777"
#: the same for version 2, computed before version 3 existed
V2_TINY_DIGEST = "d2c66e2a906a706ccd21ce2800a765cc36a1cfaf08e45099022b76489370e8c0"
#: the same for version 3 (the default), computed with the single-module renderer (reid/data/synthetic.py)
#: before it was split into the reid.data.synthetic package
V3_TINY_DIGEST = "2f756ddef9bca8ee030a1c25902a18df391149fd343f2f3c12b2c3b64be7525f"


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))}


def attribute_differences(a, b) -> list[str]:
    return [k for k in a.__dict__ if getattr(a, k) != getattr(b, k)]


@pytest.mark.parametrize("version, expected", [(1, V1_TINY_DIGEST), (2, V2_TINY_DIGEST), (3, V3_TINY_DIGEST)])
def test_every_version_renders_its_pinned_bytes(tmp_path, version, expected):
    params = SynthParams(identities=6, images_per_identity=3, size=(32, 32), version=version)
    root = write_market_layout(tmp_path / "set", params, train_ids=4, workers=1)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.jpg")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    assert h.hexdigest() == expected


@pytest.mark.parametrize("version", [2, 3])
def test_hard_versions_are_deterministic_and_differ_from_other_versions_and_seeds(tmp_path, version):
    params = replace(SMALL_V2, version=version)
    a = digest(write_market_layout(tmp_path / "a", params, train_ids=8, workers=1))
    b = digest(write_market_layout(tmp_path / "b", params, train_ids=8, workers=2))
    other = digest(write_market_layout(tmp_path / "s1", replace(params, seed=1), train_ids=8, workers=1))
    assert a == b and len(a) == 48
    assert set(a.values()).isdisjoint(other.values())
    for v in {1, 2, 3} - {version}:
        elsewhere = digest(write_market_layout(tmp_path / f"v{v}", replace(params, version=v), train_ids=8, workers=1))
        assert a.keys() == elsewhere.keys() and set(a.values()).isdisjoint(elsewhere.values())  # same layout, other pixels


def test_version_3_outfit_mates_share_the_outfit_and_differ_in_cut_carried_things_or_body():
    people = {pid: make_person_v3(0, pid) for pid in range(1, 280)}
    assert len(set(people.values())) == len(people)  # every identity is its own person
    outfits: dict[int, list[int]] = {}
    for pid in people:
        outfits.setdefault(outfit_of(0, pid), []).append(pid)
    assert len(outfits) == OUTFITS and min(map(len, outfits.values())) >= 5  # every outfit is worn by many
    clothing_changes = set()
    for pids in outfits.values():
        for a in pids:
            for b in pids:
                if a < b:
                    diff = attribute_differences(people[a], people[b])
                    assert diff and set(diff) <= set(OUTFIT_CHANGES) | set(BODY) | {"upper_second", "accessory_colour"}
                    assert people[a].upper == people[b].upper and people[a].lower == people[b].lower  # the outfit's colours
                    clothing_changes |= set(diff) - set(BODY)
    assert clothing_changes >= set(OUTFIT_CHANGES)  # every kind of change happens
    # across outfits people differ in more than outfit-mates do
    same = [len(attribute_differences(people[p], people[q])) for ps in outfits.values() for p, q in zip(ps, ps[1:])]
    firsts = [ps[0] for ps in outfits.values()]
    across = [len(attribute_differences(people[p], people[q])) for p, q in zip(firsts, firsts[1:])]
    assert np.mean(across) > np.mean(same) + 2


def test_version_3_outfit_mates_differ_in_the_pixels_under_identical_nuisance():
    size, props = (64, 64), scene_props(0)
    cameras = [make_camera_v2(0, cam, size, PROFILE_V3) for cam in (0, 1)]
    crowd = (make_person_v3(0, 200), make_person_v3(0, 201))
    by_outfit: dict[int, list[int]] = {}
    for pid in range(1, 120):
        by_outfit.setdefault(outfit_of(0, pid), []).append(pid)
    for pids in list(by_outfit.values())[:4]:
        base = make_person_v3(0, pids[0])
        for pid in pids[1:4]:
            twin, pixels_apart = make_person_v3(0, pid), 0
            for camera in cameras:
                for j in range(4):  # same background, pose, crop, light, noise and passers-by: only the person differs
                    a, b = (np.asarray(Image.open(io.BytesIO(render_image_v2(p, camera, np.random.default_rng(j), size, crowd,
                                                                             props, PROFILE_V3))), np.int16)
                            for p in (base, twin))
                    pixels_apart += int((np.abs(a - b).max(axis=2) > 12).sum())  # well above JPEG re-encoding noise
            assert pixels_apart > 20, (pids[0], pid, attribute_differences(base, twin))


def test_near_duplicates_differ_in_one_or_two_visible_attributes():
    changed = {}
    for family in range(40):
        base = make_person_v2(0, family * FAMILY_SIZE + 1)
        members = [make_person_v2(0, family * FAMILY_SIZE + m) for m in range(2, FAMILY_SIZE + 1)]
        for p in members:
            diff = attribute_differences(base, p)
            assert 1 <= len(diff) <= 2, diff
            assert diff[0] in visible_changes(base) or diff[-1] in visible_changes(base)
            for k in diff:
                changed[k] = changed.get(k, 0) + 1
        assert len(set(members + [base])) == FAMILY_SIZE  # every member is its own person
    assert len(changed) >= 8  # many kinds of change, not one
    # across families people are drawn independently: they differ in more than a near-duplicate does
    across = [len(attribute_differences(make_person_v2(0, f * FAMILY_SIZE + 1), make_person_v2(0, (f + 1) * FAMILY_SIZE + 1))) for f in range(40)]
    assert np.mean(across) > 4


def test_near_duplicate_crops_differ_under_identical_nuisance():
    size, props = (64, 64), scene_props(0)
    cameras = [make_camera_v2(0, cam, size) for cam in (0, 1)]
    crowd = (make_person_v2(0, 200), make_person_v2(0, 201))
    for family in range(6):
        base = make_person_v2(0, family * FAMILY_SIZE + 1)
        for m in range(2, FAMILY_SIZE + 1):
            twin = make_person_v2(0, family * FAMILY_SIZE + m)
            pixels_apart = 0
            for camera in cameras:
                for j in range(4):  # same background, pose, crop, light, noise and passers-by: only the person differs
                    a, b = (np.asarray(Image.open(io.BytesIO(render_image_v2(p, camera, np.random.default_rng(j), size, crowd, props))), np.int16)
                            for p in (base, twin))
                    pixels_apart += int((np.abs(a - b).max(axis=2) > 12).sum())  # well above JPEG re-encoding noise
            assert pixels_apart > 20, (family, m, attribute_differences(base, twin))


def test_cameras_see_people_from_opposite_sides_with_their_own_colour_cast():
    c0, c1 = make_camera_v2(0, 0, (64, 64)), make_camera_v2(0, 1, (64, 64))
    assert c0.view_p[0] == c1.view_p[1] == 0.8  # camera 0 mostly front, camera 1 mostly back
    assert np.abs(c0.gains - c1.gains).max() > 0.05 and 0 < c0.resolution < 1


def test_harder_versions_are_harder_for_the_histogram_baseline(tmp_path):
    spec = DataSpec(identities=60, images_per_identity=6, train_ids=4, height=64, width=64, query_rule="leave_one_out")
    r1, m_ap = zip(*[(r["cmc"][0], r["mAP"]) for r in (
        run_baseline(build_data(spec.model_copy(update={"synth_version": v}), cache_dir=tmp_path)) for v in (1, 2, 3))])
    assert r1[0] > 1.5 * max(r1[1:]) and m_ap[0] > 1.5 * max(m_ap[1:])  # far easier for colour histograms
    caches = sorted(p.name[:3] for p in (tmp_path / "synthetic").iterdir() if p.suffix != ".lock")
    assert caches == ["v1-", "v2-", "v3-"]  # the version is part of the cache key



def test_unknown_versions_are_refused(run_cli):
    with pytest.raises(ReidError, match="renderer version 4"):
        SynthParams(version=4)
    with pytest.raises(Exception, match="synth_version"):
        DataSpec(synth_version=4)
    code, text = run_cli("data", "synth", "-o", "/nonexistent/x", "--renderer", "4")
    assert code == 2 and "renderer" in text


def test_cli_synth_writes_the_version_2_set(tmp_path, run_cli):
    args = ["--identities", "6", "--images", "3", "--size", "32x32", "--train-ids", "4"]
    code, text = run_cli("data", "synth", "-o", str(tmp_path / "cli"), *args, "--renderer", "2")
    assert code == 0 and "wrote 18 images" in text
    expected = write_market_layout(tmp_path / "api", SynthParams(identities=6, images_per_identity=3, size=(32, 32), version=2), train_ids=4)
    assert digest(tmp_path / "cli") == digest(expected)
