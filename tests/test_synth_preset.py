"""``data.synth_preset``: one key shapes the synthetic set like Market-1501; keys a spec sets itself win."""

from __future__ import annotations

import pytest

from reid.data.build import build_data
from reid.data.split import training_identity_count
from reid.errors import ReidError
from reid.evaluation import resolve_protocol
from reid.spec import SYNTH_PRESETS, DataSpec, load_spec_text

MARKET = 'data.synth_preset="market1501"'


def test_the_market_preset_is_market1501_sized():
    data = load_spec_text('name = "m"', overrides=[MARKET]).data
    assert (data.identities, data.images_per_identity, data.cameras, data.train_ids, data.query_rule) == \
        (1501, 17, 6, 751, "per_camera")
    train_images = training_identity_count(data.identities, data.train_ids, data.train_fraction) * data.images_per_identity
    assert abs(train_images - 12_936) / 12_936 < 0.02  # Market-1501's training split: 12,936 images of 751 identities


def test_keys_the_spec_sets_win_and_its_own_split_replaces_the_presets():
    shrunk = load_spec_text('name = "m"\n[data]\nidentities = 12\ncameras = 3', overrides=[MARKET]).data
    assert (shrunk.identities, shrunk.cameras, shrunk.images_per_identity, shrunk.train_ids) == (12, 3, 17, 751)
    by_fraction = load_spec_text('name = "m"', overrides=[MARKET, "data.train_fraction=0.5"]).data
    assert by_fraction.train_ids is None and by_fraction.train_fraction == 0.5
    assert DataSpec(synth_preset="market1501", train_ids=100).train_ids == 100


def test_the_resolved_spec_reads_back_as_itself():
    spec = load_spec_text('name = "m"', overrides=[MARKET, "data.height=256", "data.width=128"])
    assert load_spec_text(spec.to_toml()) == spec and spec.data.synth_preset == "market1501"


@pytest.mark.parametrize("sets, message", [
    (['data.synth_preset="duke"'], "data.synth_preset' = 'duke': Input should be 'market1501'"),
    ([MARKET, 'data.dataset="market1501"', 'data.root="/data/m"'], 'set dataset = "synthetic" or remove synth_preset'),
])
def test_an_unknown_preset_or_a_real_dataset_with_a_preset_is_a_spec_error(sets, message):
    with pytest.raises(ReidError) as e:
        load_spec_text('name = "m"', source="x.toml", overrides=sets)
    assert message in str(e.value) and str(e.value).startswith("x.toml")


def test_a_shrunk_preset_set_keeps_one_query_per_identity_and_camera(tmp_path):
    spec = DataSpec(synth_preset="market1501", identities=6, images_per_identity=8, train_ids=3, height=32, width=16)
    data = build_data(spec, cache_dir=tmp_path)
    cameras = SYNTH_PRESETS["market1501"]["cameras"]
    assert data.num_classes == 3 and len(data.query) == 3 * cameras and len(data.gallery) == 3 * 8 - 3 * cameras
    assert sorted(zip(data.query.pids.tolist(), data.query.camids.tolist())) == \
        sorted({(p, c) for p in data.query.pids.tolist() for c in range(cameras)})
    assert resolve_protocol("auto", data.same_set, data.query.camids) == "market"
