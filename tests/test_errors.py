"""ReidError survives pickling (torch.distributed sends it between ranks) with its message and attributes
unchanged, for the class and its subclasses."""

from __future__ import annotations

import copy
import pickle

from hypothesis import given
from hypothesis import strategies as st

from reid.engine.rundir import RunDirRefused
from reid.engine.trainer import NonFiniteLoss, TrainingInterrupted, TrainingPreempted
from reid.errors import ReidError

texts = st.text(max_size=40)
optional = st.none() | texts
classes = st.sampled_from([ReidError, RunDirRefused, TrainingInterrupted, TrainingPreempted, NonFiniteLoss])


@given(cls=classes, what=texts, where=optional, fix=optional)
def test_a_pickled_error_is_the_same_error(cls, what, where, fix):
    error = cls(what, where=where, fix=fix)
    error.add_note("a note")
    for again in (pickle.loads(pickle.dumps(error)), copy.deepcopy(error)):
        assert type(again) is cls and str(again) == str(error) and again.args == error.args
        assert (again.what, again.where, again.fix, again.message) == (what, where, fix, error.message)
        assert again.exit_code == error.exit_code and again.__notes__ == ["a note"]


class Missing(ReidError):
    """A subclass whose ``__init__`` takes other arguments."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no {name}", fix=f"create {name}")


def test_a_subclass_with_its_own_init_pickles_too():
    again = pickle.loads(pickle.dumps(Missing("x.txt")))
    assert type(again) is Missing and str(again) == "no x.txt. Fix: create x.txt" and again.name == "x.txt"
