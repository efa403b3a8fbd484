"""The package installs like one: a wheel built from the sources (distribution `reid-lab`, import name and
command `reid`) installed into a fresh virtual environment runs `reid --version` and `reid inspect --params`
from a folder outside the checkout, and `reid bench` says in one `error:` line that it needs a checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

import reid

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(dest: Path) -> Path:
    """A wheel of a copy of the sources (the build leaves nothing in the checkout); no network needed."""
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "reid", src / "reid", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(dest / "dist"), str(src)], check=True, capture_output=True, text=True)
    (wheel,) = (dest / "dist").glob("*.whl")
    return wheel


def fresh_venv(path: Path) -> Path:
    """A new virtual environment that borrows this one's installed dependencies (torch is not installed twice):
    a ``.pth`` file lists this interpreter's site-packages after the new environment's own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "_borrowed_dependencies.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    return python


@pytest.mark.slow  # about 30 s: a wheel build and three commands that import torch
def test_the_wheel_installs_in_a_fresh_venv_and_runs_outside_the_checkout(tmp_path):
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "reid-lab" and meta["scripts"] == {"reid": "reid.cli:main"}
    wheel = build_wheel(tmp_path)
    assert wheel.name == f"reid_lab-{reid.__version__}-py3-none-any.whl"
    python = fresh_venv(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, text=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}

    def reid_cmd(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(tmp_path / "venv" / "bin" / "reid"), *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=300)

    where = subprocess.run([str(python), "-c", "import importlib.metadata as m, reid; "
                            "print(reid.__file__); print(m.version('reid-lab'))"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert where[0].startswith(str(tmp_path / "venv")) and where[1] == reid.__version__
    version = reid_cmd("--version")
    assert version.returncode == 0 and version.stdout.startswith(f"reid {reid.__version__} · torch")
    inspect = reid_cmd("inspect", "--params")
    assert inspect.returncode == 0, inspect.stderr
    assert "11,176,512" in inspect.stdout
    bench = reid_cmd("bench", "--quick")
    assert bench.returncode == 2 and bench.stdout == ""
    assert bench.stderr.startswith("error: reid bench: it needs the benchmarks/ folder of a source checkout")
    assert len(bench.stderr.strip().splitlines()) == 1 and "Traceback" not in bench.stderr
