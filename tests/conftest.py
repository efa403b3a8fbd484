"""Every test writes reid's caches (synthetic sets, decoded images) under one temporary folder, never ~/.cache;
runs a test module shares live in :func:`module_tmp_path`, gone when the module ends."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _reid_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REID_CACHE", str(tmp_path_factory.mktemp("reid-cache-session")))
        yield


@pytest.fixture(scope="module")
def module_tmp_path(request, tmp_path_factory) -> Iterator[Path]:
    """A folder for the runs one test module's fixtures share, removed when the module ends unless one of its tests
    failed (kept to look at, as pytest keeps a failed test's ``tmp_path``). A run holds checkpoints of ~100 MB;
    kept to the session's end, as ``tmp_path_factory.mktemp`` folders are, the suite's filled 14 GB of CI's disk."""
    path = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    failed_before = request.session.testsfailed
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (exit code, stdout, stderr)``: ``reid ARGS...`` run in-process (0 when it returns)."""
    from reid.cli import main

    def run(*args) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def run_cli(cli):
    """``run_cli(*args) -> (exit code, stdout + stderr)``: :func:`cli` with both streams together."""
    def run(*args) -> tuple[int, str]:
        code, out, err = cli(*args)
        return code, out + err

    return run
