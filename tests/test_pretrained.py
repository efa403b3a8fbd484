"""Pretrained weights: torchvision state dicts map one to one, ImageNet files download (from a local server here),
bad files and failed downloads are one ReidError each."""

import functools
import hashlib
import http.server
import io
import socket
import threading

import pytest
import torch
import torchvision

from reid.engine.experiment import run_experiment
from reid.errors import ReidError
from reid.model import build_model, download, pretrained
from reid.model.download import URL_ENV, mirrored_url
from reid.model.pretrained import imagenet_weights_path, read_state_dict
from reid.spec import HeadSpec, ModelSpec, load_spec_text
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

NO_HEAD = HeadSpec(type="none")


@pytest.fixture(scope="module")
def torchvision_state():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.fixture
def weights_file(tmp_path, torchvision_state):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision_state, path)
    return path


def assert_loaded_exactly(model, state, report):
    backbone = model.backbone.state_dict()
    assert report.loaded == list(backbone)  # every backbone tensor, buffers included
    assert report.missing == [] and report.shape_mismatches == [] and report.complete
    assert report.discarded == ["fc.weight", "fc.bias"]
    for key, value in backbone.items():
        assert torch.equal(value, state[key]), key


def test_torchvision_state_dict_loads_into_every_backbone_tensor(weights_file, torchvision_state):
    model = build_model(ModelSpec(pretrained=str(weights_file)), HeadSpec(type="classifier"), 5)
    assert_loaded_exactly(model, torchvision_state, model.pretrained_report)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache; returns its checkpoints folder."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args) -> None:
        _Quiet.requests.append(self.path)


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """A local HTTP server in a thread; REID_WEIGHTS_URL points at its /models/ folder, which is returned."""
    served = tmp_path / "served"
    (served / "models").mkdir(parents=True)
    _Quiet.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{server.server_port}/models/")
    yield served / "models"
    server.shutdown()
    server.server_close()


def serve_as_imagenet(monkeypatch, served, state) -> str:
    """Save ``state`` into ``served`` under a torchvision-style name carrying its real sha256; make it resnet18's."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    name = f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    (served / name).write_bytes(data)
    monkeypatch.setitem(pretrained.IMAGENET_WEIGHTS, "resnet18", f"https://download.pytorch.org/models/{name}")
    return name


def test_imagenet_path_is_torchvisions_file_in_the_hub_cache(hub):
    assert imagenet_weights_path("resnet18") == hub / "resnet18-f37072fd.pth"
    assert imagenet_weights_path("resnet50") == hub / "resnet50-0676ba61.pth"
    assert imagenet_weights_path("resnet50_ibn_a") == hub / "resnet50_ibn_a-d9d0bb7b.pth"  # the IBN-Net release


def test_imagenet_downloads_once_into_the_hub_cache(hub, weights_server, monkeypatch, torchvision_state):
    name = serve_as_imagenet(monkeypatch, weights_server, torchvision_state)
    model = build_model(ModelSpec(pretrained="imagenet"), NO_HEAD, None)
    assert_loaded_exactly(model, torchvision_state, model.pretrained_report)
    assert (hub / name).is_file() and sorted(p.name for p in hub.iterdir()) == [name]
    assert _Quiet.requests == [f"/models/{name}"]
    model = build_model(ModelSpec(pretrained="imagenet"), NO_HEAD, None)  # from the cache: no second request
    assert _Quiet.requests == [f"/models/{name}"] and model.pretrained_report.complete


def test_wrong_hash_is_one_clear_error_and_leaves_no_file(hub, weights_server, torchvision_state):
    torch.save(torchvision_state, weights_server / "resnet18-f37072fd.pth")  # not the real file: another sha256
    with pytest.raises(ReidError) as err:
        build_model(ModelSpec(pretrained="imagenet"), NO_HEAD, None)
    message = str(err.value)
    assert "corrupt" in message and "expected f37072fd" in message and "nothing was saved" in message
    assert "/models/resnet18-f37072fd.pth" in message and str(hub / "resnet18-f37072fd.pth") in message
    assert list(hub.iterdir()) == []  # no partial file, no bad file


def test_unreachable_host_is_one_clear_error(hub, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{port}/")
    with pytest.raises(ReidError) as err:
        build_model(ModelSpec(arch="resnet50", pretrained="imagenet"), NO_HEAD, None, (3, 32, 32))
    message = str(err.value)
    assert message.count("\n") == 0 and "could not download resnet50-0676ba61.pth" in message
    assert f"http://127.0.0.1:{port}/resnet50-0676ba61.pth" in message  # the URL
    assert f"put it at {hub / 'resnet50-0676ba61.pth'}" in message and 'pretrained = "none"' in message
    assert list(hub.iterdir()) == []


def test_http_error_names_the_status(hub, weights_server):
    with pytest.raises(ReidError, match="HTTP 404"):
        download.download(mirrored_url("https://x/models/nothing-0123abcd.pth"), hub / "nothing-0123abcd.pth", "0123abcd")
    assert list(hub.iterdir()) == []


def test_wrapped_and_prefixed_state_dicts_are_unwrapped(tmp_path, torchvision_state):
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in torchvision_state.items()}, "epoch": 3}, path)
    assert set(read_state_dict(path)) == set(torchvision_state)


def test_shape_mismatches_and_missing_keys_are_reported(weights_file):
    model = build_model(ModelSpec(pretrained=str(weights_file), arch="resnet34"), NO_HEAD, None, (1, 64, 64))
    report = model.pretrained_report
    assert report.shape_mismatches == [("conv1.weight", (64, 3, 7, 7), (64, 1, 7, 7))]
    assert "layer1.2.conv1.weight" in report.missing and not report.complete
    assert all(not k.endswith("num_batches_tracked") for k in report.missing)


def test_none_loads_nothing():
    assert build_model(ModelSpec(pretrained="none"), NO_HEAD, None).pretrained_report is None


def test_missing_file_is_a_reid_error(tmp_path):
    with pytest.raises(ReidError, match="not found"):
        build_model(ModelSpec(pretrained=str(tmp_path / "nope.pth")), NO_HEAD, None)


@pytest.mark.parametrize("content", [b"this is not a checkpoint", b"PK\x03\x04broken zip"])
def test_corrupt_file_is_a_reid_error(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(ReidError, match="cannot read weights"):
        build_model(ModelSpec(pretrained=str(path)), NO_HEAD, None)


def test_file_without_tensors_is_a_reid_error(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ReidError, match="state dict"):
        read_state_dict(path)


def test_reid_checkpoint_loads_backbone_and_discards_head(tmp_path):
    trained = build_model(ModelSpec(), HeadSpec(type="bnneck"), 4)
    path = tmp_path / "last.pt"
    torch.save({"model": trained.state_dict(), "epoch": 1}, path)
    model = build_model(ModelSpec(pretrained=str(path)), HeadSpec(type="classifier"), 9)
    report = model.pretrained_report
    assert report.complete and report.loaded == list(model.backbone.state_dict())
    assert report.discarded == [k for k in trained.state_dict() if k.startswith("head.")]
    assert torch.equal(model.backbone.conv1.weight, trained.backbone.conv1.weight)


TINY_RUN = 'name = "tiny"\n' + TINY_DATA + FP32_DETERMINISTIC + """threads = 2
[model]
layers = [1, 1, 1, 1]
[head]
type = "bnneck"
[sampler]
type = "random"
batch_size = 16
[schedule]
epochs = 1
warmup_epochs = 0
max_iters_per_epoch = 2
"""


def test_fine_tuning_from_a_run_loads_its_backbone_and_rebuilds_the_classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "runs" / "tiny"
    run_experiment(load_spec_text(TINY_RUN), run, plain=True)
    best = run / "checkpoints" / "best.pt"
    trained = torch.load(best, weights_only=True)["model"]
    model = build_model(ModelSpec(layers=(1, 1, 1, 1), pretrained=str(run)), HeadSpec(type="classifier"), 3)
    report = model.pretrained_report
    assert report.source == str(best) and report.complete and report.loaded == list(model.backbone.state_dict())
    assert report.discarded == [k for k in trained if k.startswith("head.")]
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, trained[f"backbone.{key}"]), key
    assert model.num_classes == 3  # the run had 10 identities: a new classifier

    best.unlink()  # no best checkpoint: the last one
    assert build_model(ModelSpec(layers=(1, 1, 1, 1), pretrained=str(run)), NO_HEAD, None).pretrained_report.source == str(
        run / "checkpoints" / "last.pt")
    with pytest.raises(ReidError, match="no checkpoint in this directory.*checkpoints/best.pt or checkpoints/last.pt"):
        build_model(ModelSpec(pretrained=str(tmp_path / "runs")), NO_HEAD, None)
