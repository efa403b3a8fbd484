"""Which run answers Q8 (the ID-loss model) and Q11 (the triplet-loss model).

A run's role is declared in its spec (``assignment = "q8"``, as in ``specs/q8.toml``). Runs written
before that field existed have none; ``reid report --assignment`` then takes a run whose spec is
*named* ``q8`` / ``q11``. Roles are never guessed from loss weights.

Example::

    assign_runs([load_run("runs/q8"), load_run("runs/q11")])   # {"q8": Run, "q11": Run}
"""

from __future__ import annotations

from reid.report.runs import Run

#: question → the command that produces its run
RUN_COMMANDS = {"q8": "reid run specs/q8.toml", "q11": "reid run specs/q11.toml"}


def role_of(run: Run, by_name: bool = False) -> str | None:
    """``"q8"``, ``"q11"`` or None: the spec's ``assignment``, else (with ``by_name``) its name if that is a role."""
    if run.spec.assignment is not None:
        return run.spec.assignment
    return run.name if by_name and run.name in RUN_COMMANDS else None


def declares_role(runs: list[Run]) -> bool:
    """True when some run's spec declares an assignment role."""
    return any(r.spec.assignment is not None for r in runs)


def assign_runs(runs: list[Run], by_name: bool = False) -> dict[str, Run | None]:
    """The run used for each of Q8 and Q11: the first given run with that role (None when none has it)."""
    return {q: next((r for r in runs if role_of(r, by_name) == q), None) for q in RUN_COMMANDS}


def missing_run_line(question: str) -> str:
    """The sentence shown instead of a question's results when its run was not given."""
    command = RUN_COMMANDS[question]
    return (f"_No {question.upper()} run was given, so this answer has no results yet._ Produce it with "
            f"`{command}` (it writes `runs/{question}`), then regenerate with `reid report runs/q8 runs/q11`.")
