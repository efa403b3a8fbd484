"""Every test writes reid's caches (synthetic sets, decoded images) under one temporary folder, never ~/.cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _reid_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REID_CACHE", str(tmp_path_factory.mktemp("reid-cache-session")))
        yield


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
