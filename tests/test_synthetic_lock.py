"""Ranks that render the same synthetic cache folder at once take turns: one renders, the others read it."""

from __future__ import annotations

import fcntl
import threading
import time

import pytest

from reid.data.synthetic import SynthParams, write_market_layout
from reid.errors import ReidError

PARAMS = SynthParams(identities=4, images_per_identity=3, size=(32, 32))


def test_a_second_writer_waits_for_the_first_and_renders_nothing(tmp_path):
    out = tmp_path / "cache" / "synthetic-key"
    out.parent.mkdir()
    outcome: dict = {}

    def second_rank():
        try:
            write_market_layout(out, PARAMS, train_ids=2, workers=1)
            outcome["result"] = "rendered"
        except ReidError as e:
            outcome["result"] = e.what

    with open(out.parent / f".{out.name}.lock", "w") as lock:  # the first rank is rendering
        fcntl.flock(lock, fcntl.LOCK_EX)
        waiting = threading.Thread(target=second_rank)
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive() and not list(out.parent.glob(f".{out.name}.tmp-*"))  # blocked before any work
        (out / "query").mkdir(parents=True)  # the first rank's rename lands
    waiting.join(timeout=30)
    assert outcome["result"] == "output folder already exists and is not empty"
    assert [p.name for p in out.iterdir()] == ["query"]  # nothing rendered over it


def test_the_lock_does_not_stop_a_lone_writer(tmp_path):
    out = write_market_layout(tmp_path / "s", PARAMS, train_ids=2, workers=1)
    assert sorted(p.name for p in out.iterdir()) == ["bounding_box_test", "bounding_box_train", "query"]
    with pytest.raises(ReidError, match="already exists"):
        write_market_layout(out, PARAMS, train_ids=2, workers=1)
