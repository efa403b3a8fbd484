"""Export: ONNX and TorchScript files of a tiny model reproduce PyTorch's embeddings, with dynamic batch, height and width."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from reid.cli import main
from reid.engine.experiment import run_experiment
from reid.errors import ReidError
from reid.export import FORMATS, check_parity, export_model
from reid.export.parity import compare
from reid.model import build_model
from reid.spec import HeadSpec, ModelSpec, load_spec_text
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

PRE = (64, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "RGB")


def _tiny_model() -> torch.nn.Module:
    """A 1-1-1-1 ResNet with a BN neck on 3×64×32 images; BN statistics moved off their initial values."""
    torch.manual_seed(0)
    model = build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type="bnneck"), num_classes=5, input_size=(3, 64, 32))
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 64, 32) * 2 + 0.5)
    return model.eval()


def _images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 64, 32, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def model():
    return _tiny_model()


@pytest.fixture(scope="module", params=["onnx", "torchscript"])
def exported(request, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / f"model{FORMATS[request.param].SUFFIX}"
    return export_model(model, PRE, normalize=True, fmt=request.param, out=out, metadata={"spec_name": "tiny"})


def test_parity_of_exported_model(exported):
    report = check_parity(exported, _images(24), batch_size=10)  # batches of 10, 10 and 4
    assert report.images == 24
    assert report.max_abs_diff < 1e-4
    assert report.min_cosine > 0.99999
    assert report.nearest_neighbour_agreement == 1.0
    assert report.ok


def test_metadata_describes_the_input(exported):
    for meta in (exported.metadata, FORMATS[exported.format].read_metadata(exported.path)):
        assert (meta["height"], meta["width"], meta["channels"]) == ("64", "32", "RGB")
        assert meta["mean"] == "(0.485, 0.456, 0.406)" and meta["std"] == "(0.229, 0.224, 0.225)"
        assert meta["normalized"] == "true" and meta["embedding_dim"] == "512"
        assert meta["spec_name"] == "tiny" and meta["reid_version"] and meta["format"] == exported.format
        assert "(x − mean) / std" in meta["input"]


@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch(exported, model, batch):
    run = FORMATS[exported.format].load(exported.path)
    x = _images(batch, seed=batch)
    out = run(x)
    assert out.shape == (batch, 512)
    with torch.no_grad():
        torch.testing.assert_close(out, F.normalize(model.embed(x), dim=1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("height, width", [(128, 64), (48, 40)])
def test_dynamic_height_and_width(exported, height, width):
    """Traced at 64×32, the file embeds other sizes as the PyTorch model's embed does; the metadata keeps 64×32."""
    report = check_parity(exported, torch.randn(5, 3, height, width, generator=torch.Generator().manual_seed(height)))
    assert report.max_abs_diff < 1e-4 and report.min_cosine > 0.99999 and report.ok
    assert (exported.metadata["height"], exported.metadata["width"]) == ("64", "32")


def test_unnormalised_export_is_the_embedding(model, tmp_path):
    result = export_model(model, PRE, normalize=False, fmt="onnx", out=tmp_path / "m.onnx", metadata={})
    x = _images(3)
    with torch.no_grad():
        torch.testing.assert_close(FORMATS["onnx"].load(result.path)(x), model.embed(x), rtol=1e-4, atol=1e-4)
    assert result.metadata["normalized"] == "false"


def test_parity_check_catches_a_different_model(tmp_path):
    model = _tiny_model()
    result = export_model(model, PRE, normalize=False, fmt="torchscript", out=tmp_path / "m.pt", metadata={})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # PyTorch side changes after the export
    report = check_parity(result, _images(8))
    assert not report.ok and report.min_cosine < 0.9999 and "PARITY BROKEN" in report.summary()


def test_compare_handles_shape_mismatch():
    assert not compare(torch.ones(3, 4), torch.ones(3, 5)).ok


def test_export_keeps_the_models_mode(tmp_path):
    model = _tiny_model().train()
    export_model(model, PRE, normalize=True, fmt="torchscript", out=tmp_path / "m.pt", metadata={})
    assert model.training


def test_missing_extra_is_one_clear_error(model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ReidError, match=r"pip install -e '\.\[export\]'"):
        export_model(model, PRE, normalize=True, fmt="onnx", out=tmp_path / "m.onnx", metadata={})
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [({"fmt": "tflite"}, "unknown export format"), ({"preprocess": (64, 32)}, "cannot read the preprocessing"),
     ({"preprocess": (64, 32, (0.5,) * 3, (0.5,) * 3, "BGR")}, "channels 'RGB'")],
)
def test_user_errors(model, tmp_path, kwargs, message):
    args = {"preprocess": PRE, "normalize": True, "fmt": "onnx", "out": tmp_path / "m.onnx", "metadata": {}} | kwargs
    with pytest.raises(ReidError, match=message):
        export_model(model, **args)


RUN_SPEC = """
name = "tiny-export"
seed = 2
""" + TINY_DATA.replace('query_rule = "leave_one_out"', 'query_rule = "per_camera"') + FP32_DETERMINISTIC + """
[augment]
erase = 0.0
[head]
type = "bnneck"
[sampler]
type = "random"
batch_size = 16
[schedule]
epochs = 1
warmup_epochs = 0
max_iters_per_epoch = 3
[eval]
batch_size = 32
normalize = true
"""


@pytest.mark.slow
def test_cli_exports_a_trained_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    run_experiment(load_spec_text(RUN_SPEC), tmp_path / "run", plain=True)
    capsys.readouterr()
    main(["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(tmp_path / "model.onnx")])
    out = capsys.readouterr().out
    assert "height: 64" in out and "channels: RGB" in out and "spec_name: tiny-export" in out
    assert "parity, random images" in out and "parity, validation images" in out and "parity holds" in out
    meta = FORMATS["onnx"].read_metadata(tmp_path / "model.onnx")
    assert meta["normalized"] == "true" and meta["width"] == "64"
    monkeypatch.setattr("reid.export.parity.MIN_COSINE", 1.5)  # no file can pass: the check must fail the command
    with pytest.raises(SystemExit) as e:
        main(["export", str(tmp_path / "run"), "-f", "torchscript", "-o", str(tmp_path / "m.pt"), "--images", "8"])
    assert e.value.code == 1 and "parity check failed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a user mistake: exit 2 with one line
        main(["export", str(tmp_path / "run"), "--format", "tflite"])
    assert e.value.code == 2


def test_a_flip_averaging_run_exports_the_embedding_it_evaluates_with(tmp_path, capsys):
    """eval.flip = true: the file holds the flip average, and parity is checked against reid.load(...).embed."""
    import reid
    from reid.engine.checkpoint import model_checkpoint, model_description, save_checkpoint

    spec = load_spec_text(RUN_SPEC.replace("normalize = true", "normalize = true\nflip = true"))
    torch.manual_seed(0)
    net = build_model(spec.model, spec.head, num_classes=5, input_size=(3, 64, 64))
    with torch.no_grad():
        net(torch.randn(8, 3, 64, 64) * 2 + 0.5)  # BN statistics off their initial values
    ckpt = tmp_path / "best.pt"
    save_checkpoint(model_checkpoint(model_description(spec, net), net, {}), ckpt)
    main(["export", str(ckpt), "-f", "torchscript", "-o", str(tmp_path / "m.pt"), "--images", "0"])
    assert "parity holds" in capsys.readouterr().out
    loaded = reid.load(ckpt, device="cpu")
    pixels = torch.randint(0, 256, (5, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    from_file = FORMATS["torchscript"].load(tmp_path / "m.pt")(loaded.preprocess.apply(pixels))
    torch.testing.assert_close(from_file, loaded.embed(pixels), rtol=1e-5, atol=1e-5)
    assert FORMATS["torchscript"].read_metadata(tmp_path / "m.pt")["flip"] == "true"


def test_parity_compares_with_the_evaluated_embedding_not_the_graph(model, tmp_path):
    """A file exported without the flip average fails against a model that evaluates with it."""
    result = export_model(model, PRE, normalize=True, fmt="torchscript", out=tmp_path / "m.pt", metadata={})
    assert check_parity(result, _images(8)).ok
    result.graph.flip = True  # what the run evaluates with; the file lacks it
    report = check_parity(result, _images(8))
    assert not report.ok and report.min_cosine < 0.9999
