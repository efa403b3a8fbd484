"""`reid keys` lists every spec key from the schema itself: every table's keys with the spec's defaults, and
ranges that are what validation enforces (a value just outside each printed range is refused, naming the key)."""

from __future__ import annotations

import json
import re

import pytest

from reid.cli import main
from reid.errors import ReidError
from reid.spec import Spec, load_spec_text
from reid.spec_keys import spec_keys

KEYS = spec_keys()
RANGE = re.compile(r"(?:(-?[\d.e+]+) ([<≤]) )?x(?: ([<≤]) (-?[\d.e+]+))?")
RANGED = [k for k in KEYS if RANGE.fullmatch(k.allowed)]


def test_every_key_of_every_table_is_listed_with_the_specs_default():
    dumped = Spec().model_dump(by_alias=True)
    expected = [f"{table}.{key}" if isinstance(values, dict) and table != "description" else table
                for table, values in dumped.items() for key in (values if isinstance(values, dict) else [None])]
    assert [k.key for k in KEYS] == [e.removesuffix(".None") for e in expected]
    shown = {k.key: k for k in KEYS}
    assert (shown["loss.center_weight"].default, shown["loss.center_weight"].allowed) == ("0.0", "0 ≤ x ≤ 1")
    assert (shown["head.classifier"].default, shown["head.classifier"].allowed) == (
        "linear", "arcface | circle | cosface | linear (registered)")
    assert (shown["schedule.cosine_delay_epochs"].default, shown["eval.lambda"].allowed) == ("0", "0 ≤ x ≤ 1")
    assert shown["runtime.collective_timeout_s"].type == "float or none"
    assert shown["data.synth_preset"].allowed == '"market1501" | none'
    assert len(RANGED) > 40


@pytest.mark.parametrize("key", RANGED, ids=[k.key for k in RANGED])
def test_a_value_just_outside_each_printed_range_is_refused_naming_the_key(key):
    low, low_sign, high_sign, high = RANGE.fullmatch(key.allowed).groups()
    number = int if key.type.startswith("int") else float
    outside = []  # for floats: the open bound itself, or a step beyond the closed one
    if low is not None:
        outside.append(number(float(low)) - (0 if low_sign == "<" and number is float else 1))
    if high is not None:
        outside.append(number(float(high)) + (0 if high_sign == "<" and number is float else 1))
    table, _, name = key.key.partition(".")
    for value in outside:
        text = f'name = "x"\n[{table}]\n{name} = {value}\n' if name else f'name = "x"\n{table} = {value}\n'
        with pytest.raises(ReidError, match=re.escape(f"'{key.key}'")):
            load_spec_text(text)


def test_reid_keys_prints_a_table_or_json_and_refuses_an_unknown_table(capsys):
    main(["keys", "optim", "--format", "json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in rows] == [k.key for k in KEYS if k.key.startswith("optim.")]
    assert next(r for r in rows if r["key"] == "optim.weight_decay_norm")["allowed"] == "0 ≤ x ≤ 1"
    main(["keys", "head"])
    assert "cosface" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit:
        main(["keys", "optimiser"])
    assert exit.value.code == 2 and "no spec table named 'optimiser'" in capsys.readouterr().err
