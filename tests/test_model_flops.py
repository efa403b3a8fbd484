"""fvcore FLOP counts per stage."""

from reid.model import build_model
from reid.model.flops import count_flops
from reid.spec import HeadSpec, ModelSpec


def test_flops_per_stage_sum_to_total_and_match_hand_counts():
    report = count_flops(build_model(ModelSpec(), HeadSpec(type="classifier"), 10))
    assert list(report.by_stage) == ["stem", "layer1", "layer2", "layer3", "layer4", "pooling", "head"]
    assert sum(report.by_stage.values()) == report.total
    conv1 = 64 * 64 * 64 * (3 * 7 * 7)  # one flop per multiply-add
    bn1 = 64 * 64 * 64 * 2  # fvcore's batch-norm count in eval mode: 1 flop per element per affine step
    maxpool = 64 * 64 * 64  # one per input element
    assert report.by_stage["stem"] == conv1 + bn1 + maxpool
    assert report.by_stage["pooling"] == 512 * 8 * 8
    assert report.by_stage["head"] == 512 * 10
    assert "multiply-add" in report.note
    assert report.skipped.get("aten::add") == 8  # residual additions are not counted


def test_flops_follow_the_input_size():
    small = count_flops(build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type="none"), None, (3, 64, 64)))
    large = count_flops(build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type="none"), None, (3, 128, 128)))
    assert large.by_stage["layer4"] == 4 * small.by_stage["layer4"]
    assert large.input_size == (3, 128, 128)
