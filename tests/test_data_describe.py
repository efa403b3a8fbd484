"""Dataset counts (classifier outputs, triplets), their typed form, and the `reid data` commands."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reid.data.describe import triplet_count
from reid.data.synthetic import SynthParams, write_market_layout


def test_assignment_triplet_count():
    assert triplet_count([10] * 230) == 230 * (10 * 9) * (229 * 10) == 47_403_000


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=6))
def test_triplet_count_matches_enumeration(counts):
    labels = [i for i, c in enumerate(counts) for _ in range(c)]
    n = len(labels)
    brute = sum(1 for a in range(n) for p in range(n) for q in range(n) if a != p and labels[a] == labels[p] and labels[q] != labels[a])
    assert triplet_count(counts) == brute



def test_cli_synth_info_and_errors(tmp_path, run_cli):
    out_dir = tmp_path / "synth"
    code, text = run_cli("data", "synth", "--out", str(out_dir), "--identities", "12", "--images", "4", "--size", "64x64", "--train-ids", "9")
    assert code == 0 and "wrote 48 images" in text
    code, text = run_cli("data", "info", str(out_dir))
    assert code == 0 and "classifier outputs" in text and "triplets" in text and ": 9;" in text and "validation identities: 3" in text
    assert f"{triplet_count([4] * 9):,}" in text and "market" in text
    code, text = run_cli("data", "info", str(out_dir), "--set", 'data.query_rule="leave_one_out_merged"')
    assert code == 0 and "protocol: all" in text
    code, text = run_cli("data", "info", str(tmp_path / "nowhere"))
    assert code == 2 and "no such spec file or dataset folder" in text
    code, text = run_cli("data", "synth", "--out", str(out_dir), "--size", "64by64")
    assert code == 2 and "HEIGHTxWIDTH" in text


def test_cli_baseline_on_a_spec(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "s.toml"
    spec.write_text('name = "t"\n[data]\nidentities = 20\nimages_per_identity = 4\ntrain_ids = 10\nheight = 32\nwidth = 32\n')
    code, text = run_cli("data", "baseline", str(spec))
    assert code == 0 and "Rank-1:" in text and "mAP:" in text and "protocol market" in text


def test_counts_on_the_assignment_split(tmp_path, run_cli):
    # the real counts come from the files: 230 train ids × 10 images, 49 validation ids
    root = write_market_layout(tmp_path / "a", SynthParams(identities=279, images_per_identity=10, size=(16, 16)), train_ids=230)
    code, text = run_cli("data", "info", str(root))
    assert code == 0 and "230; validation identities: 49" in text and "47,403,000" in text
