"""Spec validation: good specs load, every bad spec is one ReidError naming file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reid.errors import ReidError
from reid.registry import HEADS, SAMPLERS
from reid.spec import Spec, apply_overrides, load_spec, load_spec_text

SPECS = sorted(Path(__file__).resolve().parents[1].glob("specs/*.toml"))

toml_scalars = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32),
                         st.booleans(), st.text(alphabet="abcxyz_-. ", max_size=8), st.lists(st.integers(-5, 5), max_size=3))


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return repr(v)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_shipped_specs_validate_and_round_trip(path):
    spec = load_spec(path)
    assert load_spec_text(spec.to_toml()) == spec


def test_defaults_are_the_assignment_setting_with_a_fractional_split():
    spec = Spec()
    assert (spec.data.identities, spec.data.images_per_identity) == (279, 10)
    assert (spec.data.train_ids, spec.data.train_fraction, spec.data.query_rule) == (None, 0.8, "auto")
    assert (spec.model.arch, spec.model.last_stride, spec.data.height, spec.data.width) == ("resnet18", 1, 128, 128)


@pytest.mark.parametrize("text, needle", [
    ("[model]\nlast_stride = 3", "model.last_stride"),
    ("[modle]\nx = 1", "unknown key 'modle'"),
    ("[model]\nlast_strid = 1", "allowed here: arch, layers, last_stride"),
    ("[loss]\ntriplet_weight = 1.0", 'sampler.type = "pk"'),
    ("[loss]\nid_weight = 0.0", "nothing to train"),
    ("[data]\ndataset = \"market1501\"", "data.root is required"),
    ("name = 3", "key 'name' = 3"),
    ("[data\n", "not valid TOML"),
    ('[runtime]\ncompile_mode = "fast"', "runtime.compile_mode"),
])
def test_bad_specs_name_the_key(text, needle):
    with pytest.raises(ReidError) as e:
        load_spec_text(text, source="bad.toml")
    assert needle in str(e.value) and str(e.value).startswith("bad.toml")


@settings(max_examples=150, deadline=None)
@given(section=st.sampled_from(list(Spec.model_fields)), key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
       value=toml_scalars)
def test_random_bad_specs_raise_only_reid_errors(section, key, value):
    field = Spec.model_fields[section]
    if hasattr(field.annotation, "model_fields"):
        text = f"[{section}]\n{key} = {_toml(value)}\n"
    else:
        text = f"{section} = {_toml(value)}\n"
    try:
        load_spec_text(text, source="h.toml")
    except ReidError as e:
        assert str(e).startswith("h.toml") and "\n" not in str(e)


def test_overrides_parse_toml_values():
    assert apply_overrides({"schedule": {"epochs": 9}}, ["schedule.epochs=3", "eval.flip=true", "name=abc"]) == {
        "schedule": {"epochs": 3}, "eval": {"flip": True}, "name": "abc"}
    with pytest.raises(ReidError, match="has no '='"):
        apply_overrides({}, ["schedule.epochs"])


def test_missing_spec_file_is_one_line_on_the_cli(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reid", "run", str(tmp_path / "nope.toml")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "spec file not found" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@settings(max_examples=60, deadline=None)
@given(name=st.from_regex(r"[A-Za-z0-9_.-]{1,100}", fullmatch=True), description=st.text(),
       root=st.none() | st.text(), camera_regex=st.none() | st.text(), pretrained=st.text())
def test_every_spec_string_round_trips_through_spec_toml(name, description, root, camera_regex, pretrained):
    spec = Spec.model_validate({"name": name, "description": description, "data": {"root": root, "camera_regex": camera_regex},
                                "model": {"pretrained": pretrained}, "eval": {"lambda": 0.25}})
    text = spec.to_toml()
    assert load_spec_text(text) == spec
    assert "lambda = 0.25" in text  # written under its TOML name, not the Python one (lambda_)


def test_a_multi_line_description_round_trips():
    spec = load_spec_text('name = "m"\ndescription = """first line\nsecond "quoted" \\\\ line\n"""\n')
    assert spec.description == 'first line\nsecond "quoted" \\ line\n'
    assert load_spec_text(spec.to_toml()) == spec


@pytest.mark.parametrize("text, needle", [
    ('[data]\ndataset = "mine"\nroot = "/x"', "unknown dataset 'mine': registered datasets are cuhk03, dukemtmc, folder, market1501, msmt17, synthetic"),
    ('[head]\ntype = "mlp"', "registered heads are bnneck, classifier, none"),
    ('[sampler]\ntype = "balanced"', "registered samplers are pk, random"),
    ('[model]\npooling = "median"', "registered poolings are avg, gem, max"),
    ('[loss]\nmining = "semi"', "registered triplet mining rules are all, hard, soft"),
    ('[loss]\nterms = {focal = 0.1}', "registered loss terms are center, id, triplet"),
])
def test_unknown_component_names_list_the_registered_ones(text, needle):
    with pytest.raises(ReidError, match="register your own with @reid.registry") as e:
        load_spec_text(text, source="c.toml")
    assert needle in str(e.value)


def test_components_registered_from_user_code_are_accepted(monkeypatch):
    monkeypatch.setitem(HEADS._loaded(), "mlp", lambda spec, dim, num_classes: None)
    monkeypatch.setitem(SAMPLERS._loaded(), "balanced", lambda pids, spec, seed, rank, world_size: None)
    spec = load_spec_text('[head]\ntype = "mlp"\n[sampler]\ntype = "balanced"\n[loss]\ntriplet_weight = 1.0')
    assert (spec.head.type, spec.sampler.type) == ("mlp", "balanced")  # a custom sampler may serve triplets


def test_role_is_any_text_and_the_older_assignment_key_reads_as_it():
    assert Spec().role is None and load_spec_text('role = "q8"').role == "q8"
    old = load_spec_text('name = "q8"\nassignment = "q8"\n')  # specs and run directories written before `role`
    assert old.role == "q8" and "assignment" not in old.to_toml() and 'role = "q8"' in old.to_toml()
    assert load_spec_text(old.to_toml()) == old
    with pytest.raises(ReidError, match="role"):
        load_spec_text('role = ""')
