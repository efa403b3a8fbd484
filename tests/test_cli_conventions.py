"""The CLI conventions hold for every command: -o/--out, -s/--set, --format text|json, the spec positional, --version;
``reid --help`` starts without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from enum import Enum

import typer

from reid.cli.app import OutputFormat, app


def commands() -> dict:
    """Every leaf command (Typer's own click objects), by its path (``data info``)."""
    found: dict = {}

    def walk(cmd, path: str) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}".strip())
        else:
            found[path] = cmd

    walk(typer.main.get_command(app), "")
    return found


def options(cmd) -> dict:
    return {p.name: p for p in cmd.params}


def test_shared_options_have_one_spelling_everywhere():
    cmds = commands()
    for path, cmd in cmds.items():
        opts = options(cmd)
        if "out" in opts:
            assert {"-o", "--out"} <= set(opts["out"].opts), path
        for name in ("overrides", "set_"):
            if name in opts:
                assert set(opts[name].opts) == {"-s", "--set"}, path
        fmt = [p for p in cmd.params if "--format" in getattr(p, "opts", [])]
        if fmt:
            assert issubclass(fmt[0].type_descriptor.annotation, Enum), path  # help lists the choices
    for path in ("data info", "data baseline", "inspect", "bench", "eval", "search"):  # commands that print results
        fmt = [p for p in cmds[path].params if "--format" in p.opts]
        assert fmt and fmt[0].type_descriptor.annotation is OutputFormat, f"{path}: no --format text|json"
    for path in ("inspect", "bench", "run"):
        first = cmds[path].params[0]
        assert first.param_type_name == "argument" and "spec" in first.name, path


def test_help_lists_the_choices_of_an_enum(cli):
    code, out, _ = cli("data", "baseline", "--help")
    assert code == 0 and "text|json" in out and "--plain" in out and "-s" in out


def test_version_option_and_command(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("reid ") and "torch" in out
    assert cli("version")[1] == out


def test_data_info_and_baseline_print_json(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "synth"
    assert cli("data", "synth", "-o", str(root), "--identities", "8", "--images", "4", "--size", "32x32",
               "--train-ids", "5")[0] == 0
    code, out, _ = cli("data", "info", str(root), "--format", "json")
    info = json.loads(out)
    assert code == 0 and info["num_classes"] == 5 and info["validation_identities"] == 3 and info["protocol"] == "market"
    code, out, _ = cli("data", "baseline", str(root), "-s", "data.height=32", "-s", "data.width=32", "--format", "json")
    result = json.loads(out)
    assert code == 0 and result["queries"] == info["query"]["images"] and 0 <= result["mAP"] <= 1
    assert {"rank1", "rank5", "rank10", "protocol"} <= set(result)


def test_data_info_on_a_folder_with_an_explicit_format_and_one_line_errors(tmp_path, cli):
    from PIL import Image

    for pid in range(5):
        for j in range(2):
            (tmp_path / "f" / f"p{pid}").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 16), (pid * 40, 0, 0)).save(tmp_path / "f" / f"p{pid}" / f"{j}.jpg")
    code, out, _ = cli("data", "info", str(tmp_path / "f"), "--dataset", "folder", "--format", "json")
    assert code == 0 and json.loads(out)["num_classes"] == 4  # 0.8 of 5 identities, no split settings
    code, _, err = cli("data", "info", str(tmp_path / "f"), "--dataset", "csv_of_mine")
    assert code == 2 and err.startswith("error:") and "registered datasets are" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("data", "info", str(tmp_path / "f"), "--format", "xml")
    assert code == 2 and "xml" in err and "text" in err and "json" in err


def test_inspect_takes_the_spec_as_its_positional(tmp_path, cli):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "t"\n[data]\nidentities = 20\nheight = 64\nwidth = 32\n[model]\nlast_stride = 2\n')
    code, out, _ = cli("inspect", str(spec), "--format", "json")
    config = json.loads(out)["config"]
    assert code == 0 and config["input_size"] == [3, 64, 32] and config["model"]["last_stride"] == 2
    assert config["num_classes"] == 16  # 0.8 of the 20 synthetic identities


def test_the_command_line_starts_without_torch_and_its_help_lists_every_command():
    """`reid --help`, `reid VERB --help` and a spec path that does not exist answer before torch (seconds on a small
    CPU) is imported: the commands import what they use when they run."""
    heavy = ["torch", "torchvision", "timm", "matplotlib", "mlflow", "tensorboard", "fvcore", "onnxruntime"]
    code = ("import sys\nfrom reid.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print('exit', e.code)\n"
            f"print('imported:', sorted(m for m in {heavy!r} if m in sys.modules))\n")
    for args in (["--help"], ["run", "--help"], ["runs", "--help"], ["run", "no-such-spec.toml"]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert "imported: []" in done.stdout, (args, done.stdout, done.stderr)
    listed = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True).stdout
    assert all(f" {name} " in listed for name in commands() if " " not in name), listed
