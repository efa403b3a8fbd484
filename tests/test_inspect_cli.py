"""`reid inspect`: table check exit codes, JSON output, one-line errors."""

import json

import pytest
import torch
import torchvision



def test_params_matches_the_documented_table(cli):
    code, out, _ = cli("inspect", "--params")
    assert code == 0
    assert "AvgPool2d-72" in out and "[-1, 512, 1, 1]" in out
    assert "Total params: 11,176,512" in out and "Trainable params: 11,176,512" in out
    assert "all 72 rows match" in out
    assert "kernel 8x8" in out and "73,984" in out
    assert "the model runs AdaptiveAvgPool2d" in out  # the table shows the documented fixed kernel; the model pools adaptively
    assert "✗" not in out


def test_flops_adds_the_per_stage_breakdown(cli):
    code, out, _ = cli("inspect", "--params", "--flops")
    assert code == 0
    assert "multiply-add" in out and "layer4" in out and "pooling" in out


def test_other_configuration_is_not_compared(cli):
    code, out, _ = cli("inspect", "--params", "--input", "3x256x128", "--arch", "resnet34", "--last-stride", "2")
    assert code == 0
    assert "not compared" in out and "AvgPool2d-136" in out and "8x4" in out


@pytest.mark.parametrize(
    "args, first_row",
    [(["--last-stride", "2"], "row 55 (Conv2d-55)"), (["--layers", "2,2,2,1"], "row 64 (Conv2d-64)")],
)
def test_altered_model_with_check_fails_naming_the_first_row(cli, args, first_row):
    code, out, err = cli("inspect", "--params", "--check", *args)
    assert code == 1
    assert first_row in err and "✗" in out


def test_json_output(cli):
    code, out, _ = cli("inspect", "--flops", "--params", "--format", "json", "--head", "bnneck", "--num-classes", "10")
    assert code == 0
    data = json.loads(out)
    assert len(data["rows"]) == 74 and data["rows"][71]["layer"] == "AvgPool2d-72"
    assert data["totals"]["backbone"] == 11_176_512
    assert data["totals"]["non_trainable"] == 512  # the BN neck's frozen bias
    assert data["check"] == {"compared": True, "differences": [], "mismatches": []}
    assert data["first_block"]["params"] == 73_984
    assert data["pooling"]["kernel"] == [8, 8]
    assert (data["pooling"]["layer"], data["pooling"]["module"]) == ("AvgPool2d", "AdaptiveAvgPool2d")
    assert data["flops"]["total"] == sum(data["flops"]["by_stage"].values())
    assert data["config"]["head"]["type"] == "bnneck"


def test_json_mismatch_exit_code(cli):
    code, out, _ = cli("inspect", "--format", "json", "--check", "--last-stride", "2")
    assert code == 1 and json.loads(out)["check"]["mismatches"][0]["row"] == 55


def test_spec_supplies_model_head_and_input(tmp_path, cli):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "t"\n[data]\nheight = 256\nwidth = 128\ntrain_ids = 20\n[model]\nlast_stride = 2\n')
    code, out, _ = cli("inspect", "--spec", str(spec), "--format", "json")
    data = json.loads(out)
    assert code == 0 and not data["check"]["compared"]
    assert data["config"]["input_size"] == [3, 256, 128] and data["config"]["num_classes"] == 20
    assert data["rows"][-1]["layer"] == "Linear-74" and data["rows"][-1]["output_shape"] == [-1, 20]
    code, out, _ = cli("inspect", "--spec", str(spec), "--last-stride", "1", "--input", "3x128x128", "--format", "json")
    assert code == 0 and json.loads(out)["check"]["compared"]


def test_pretrained_report(tmp_path, cli):
    path = tmp_path / "w.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    code, out, _ = cli("inspect", "--pretrained", str(path), "--format", "json")
    assert code == 0 and json.loads(out)["pretrained"]["discarded"] == ["fc.weight", "fc.bias"]


@pytest.mark.parametrize(
    "args, mentions",
    [
        (["--input", "3x0x5"], "--input"),
        (["--layers", "a,b"], "--layers"),
        (["--last-stride", "3"], "--last-stride"),
        (["--last-stride", "x"], "--last-stride"),
        (["--arch", "resnet50x"], "--arch"),
        (["--arch", "timm:resnet10t", "--layers", "1,1,1,1"], "--arch"),
        (["--head", "classifier"], "--num-classes"),
        (["--format", "xml"], "--format"),
        (["--pretrained", "/no/such/file.pth"], "not found"),
    ],
)
def test_bad_options_give_one_error_line(cli, args, mentions):
    code, out, err = cli("inspect", *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and mentions in lines[0]
    assert "Traceback" not in out + err


def test_resnet50_table_totals_and_flops_at_any_input(cli):
    code, out, _ = cli("inspect", "--params", "--flops", "--arch", "resnet50", "--input", "3x256x128", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["totals"]["backbone"] == 23_508_032  # torchvision's 25,557,032 minus fc (2,049,000)
    assert data["rows"][-1]["layer"] == "AvgPool2d-185" and data["rows"][-1]["output_shape"] == [-1, 2048, 1, 1]
    assert data["pooling"]["feature_size"] == [16, 8] and data["first_block"]["block"] == "Bottleneck-16"
    assert not data["check"]["compared"] and "block bottleneck (documented: basic)" in data["check"]["differences"]
    assert list(data["flops"]["by_stage"]) == ["stem", "layer1", "layer2", "layer3", "layer4", "pooling", "head"]
    assert data["flops"]["total"] == sum(data["flops"]["by_stage"].values()) > 4e9  # ~4.1 G at 224², more at 256×128 s1


def test_resnet50_text_output(cli):
    code, out, _ = cli("inspect", "--params", "--arch", "resnet50", "--input", "3x64x64")
    assert code == 0 and "Total params: 23,508,032" in out and "Bottleneck-184" in out and "not compared" in out


def test_timm_arch_shows_its_table_and_flops(cli):
    code, out, _ = cli("inspect", "--arch", "timm:resnet10t", "--input", "3x64x64", "--flops", "--params", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["first_block"] is None and data["pooling"]["feature_size"] == [4, 4]
    assert data["rows"][-1]["output_shape"] == [-1, 512, 1, 1] and list(data["flops"]["by_stage"]) == ["body", "pooling", "head"]
    assert data["check"]["differences"][0] == "arch timm:resnet10t (documented: resnet18)"


def test_unknown_arch_is_one_line_listing_the_choices(cli):
    code, out, err = cli("inspect", "--arch", "resnet99")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--arch" in err and "resnet152" in err and "timm:<name>" in err


def test_a_spec_with_imagenet_weights_is_inspected_without_fetching_them(cli, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("reid inspect fetched weights it does not need")

    monkeypatch.setattr("reid.model.pretrained.download", no_download)
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-torch-home")  # nothing cached to load either
    code, _, err = cli("inspect", "specs/market1501-bot.toml", "--params")  # its classifier's size needs the data
    assert code == 2 and "--num-classes N" in err and "751 for Market-1501" in err and len(err.strip().splitlines()) == 1
    code, out, _ = cli("inspect", "specs/market1501-bot.toml", "--params", "--num-classes", "751")
    assert code == 0 and "Total params:" in out
    assert "pretrained = 'imagenet' not loaded" in out and "--pretrained imagenet" in out
    code, out, _ = cli("inspect", "specs/market1501-bot.toml", "--num-classes", "751", "--format", "json")
    data = json.loads(out)
    assert data["weights_not_loaded"] == "imagenet" and data["pretrained"] is None
    assert data["config"]["model"]["pretrained"] == "none"
