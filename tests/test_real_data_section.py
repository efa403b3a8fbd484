"""The "Real pedestrians" block of BENCHMARKS.md, written from made-up measurements (no real images needed)."""

from benchmarks.real_data import Measured, Scores, Split, SpeedRounds, section, true_matches
from reid.data.formats import Sample

INFO = {"cpu": "Test CPU", "physical_cores": 2, "isa": ["avx2"], "torch": "2.x"}


def measured(method: str, seed: int, rank1: float, ips: float) -> Measured:
    return Measured(method, seed, 8, Scores(rank1, rank1, rank1 / 2), Scores(0.05, 0.1, 0.1), ips, 600.0, "cpu (fp32)")


def split(per_camera: int) -> Split:
    """Two identities × two cameras × ``per_camera`` images; the first of each identity and camera is the query."""
    samples = [Sample(f"{p}_{c}_{i}.jpg", p, c) for p in range(2) for c in range(2) for i in range(per_camera)]
    query = [s for s in samples if s.path.endswith("_0.jpg")]
    gallery = [s for s in samples if s not in query]
    return Split(samples, query, gallery, query, gallery)


def test_the_speed_table_gives_each_methods_ratio_to_the_plain_loop():
    real = {"q8": [measured("q8", 0, 0.2, 150.0), measured("q8", 1, 0.3, 150.0)],
            "plain": [measured("plain", 0, 0.1, 90.0)]}
    speed = SpeedRounds([{"reid": 200.0, "plain": 100.0}, {"reid": 220.0, "plain": 110.0}], 0.01, "Test CPU")
    text = section(real, {"q8": [measured("q8", 0, 0.5, 100.0)]}, 8, split(2), INFO, [], [], speed)
    assert "| plain PyTorch loop (fp32) | 100 | 110 | 105 | 1.00 |" in text
    assert "| 200 | 220 | 210 | 2.00 |" in text
    assert "| q8 | 50.0 | 1 | 25.0 ± 7.1 | 1 |" in text  # the ranking table: mean ± std over the two seeds
    assert "back to back" in section(real, {}, 8, split(2), INFO, [], [], speed)
    assert "back to back" not in section(real, {}, 8, split(2), INFO, [], [], None)


def test_map_equals_minp_is_explained_only_when_every_query_has_one_true_match():
    real = {"plain": [measured("plain", 0, 0.1, 90.0)]}
    assert true_matches(split(2).cross_query, split(2).cross_gallery) == {1}
    assert "its mAP equals its mINP" in section(real, {}, 8, split(2), INFO, [], [], None)
    assert true_matches(split(3).cross_query, split(3).cross_gallery) == {2}
    assert "its mAP equals its mINP" not in section(real, {}, 8, split(3), INFO, [], [], None)
