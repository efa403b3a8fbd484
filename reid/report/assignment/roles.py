"""Which run answers Q8 (the ID-loss model) and Q11 (the triplet-loss model).

A run's role is declared in its spec (``role = "q8"``, as in ``specs/q8.toml``; older specs say
``assignment = "q8"``, read as the same). The spec takes any text; the roles the assignment defines,
:data:`ROLES`, are checked here (:func:`check_role`), and ``reid run`` checks them before training. Runs
written before that field existed have none; ``reid report --assignment`` then takes a run whose spec is
*named* ``q8`` / ``q11``. Roles are never guessed from loss weights.

A role's run may be repeated with different seeds (``reid run specs/q8.toml --seeds 0,1,2`` writes
``runs/q8/seed-0`` …): :func:`assign_groups` collects those repeats into a
:class:`~reid.report.seed_groups.SeedGroup`, whose mean ± std Q8 and Q11 then report.

Example::

    assign_runs([load_run("runs/q8"), load_run("runs/q11")])   # {"q8": Run, "q11": Run}
    assigned, groups = assign_groups([load_run(p) for p in expand_run_paths(["runs/q8", "runs/q11"])])
"""

from __future__ import annotations

from reid.errors import ReidError
from reid.report.runs import Run
from reid.report.seed_groups import SeedGroup, group_key, group_runs

#: question → the command that produces its run
RUN_COMMANDS = {"q8": "reid run specs/q8.toml", "q11": "reid run specs/q11.toml"}
#: the roles the assignment defines (a spec's ``role``)
ROLES = tuple(RUN_COMMANDS)


def check_role(role: str | None, run: str) -> str | None:
    """``role`` when it is None or one of :data:`ROLES`; else a :class:`ReidError` naming ``run``, the value and the roles.

    Example:
        >>> check_role("q8", "runs/q8")
        'q8'
        >>> check_role("q9", "runs/q9")
        Traceback (most recent call last):
        reid.errors.ReidError: runs/q9: role 'q9' is not a role the assignment defines (known roles: q8, q11). Fix: set role = "q8" or role = "q11", or remove the key
    """
    if role is None or role in ROLES:
        return role
    raise ReidError(f"role {role!r} is not a role the assignment defines (known roles: {', '.join(ROLES)})", where=run,
                    fix=" or ".join(f'set role = "{r}"' if i == 0 else f'role = "{r}"' for i, r in enumerate(ROLES))
                    + ", or remove the key")


def role_of(run: Run, by_name: bool = False) -> str | None:
    """``"q8"``, ``"q11"`` or None: the spec's ``role``, else (with ``by_name``) its name if that is a role.

    Raises:
        ReidError: the spec declares a role the assignment does not define (:func:`check_role`).
    """
    if run.spec.role is not None:
        return check_role(run.spec.role, str(run.path))
    return run.name if by_name and run.name in RUN_COMMANDS else None


def declares_role(runs: list[Run]) -> bool:
    """True when some run's spec declares a role (each declared role checked by :func:`check_role`)."""
    return any(check_role(r.spec.role, str(r.path)) is not None for r in runs)


def assign_runs(runs: list[Run], by_name: bool = False) -> dict[str, Run | None]:
    """The run used for each of Q8 and Q11: the first given run with that role (None when none has it)."""
    return {q: next((r for r in runs if role_of(r, by_name) == q), None) for q in RUN_COMMANDS}


def assign_groups(runs: list[Run], by_name: bool = False) -> tuple[dict[str, Run | None], dict[str, SeedGroup | None]]:
    """The run and the seed group used for each of Q8 and Q11 (None for both when no run has the role).

    The group is the first given run with the role (:func:`assign_runs`) and every other given run with
    that role whose spec differs from its spec only in ``seed`` (and ``name``, ``runtime.threads``, see
    :func:`~reid.report.seed_groups.group_key`); a run repeating a seed already taken is left out. The run
    is the group's lowest seed: the one whose curves and per-epoch table the report shows. For a role with
    a single run both are what :func:`assign_runs` gives.
    """
    assigned: dict[str, Run | None] = {}
    groups: dict[str, SeedGroup | None] = {}
    for question, first in assign_runs(runs, by_name).items():
        if first is None:
            assigned[question] = groups[question] = None
            continue
        members = [run for run in runs if role_of(run, by_name) == question and group_key(run.spec) == group_key(first.spec)]
        # ``first`` comes first, so it keeps its seed; a later run repeating a seed is left out
        (groups[question],) = group_runs([r.path for r in members], skip_repeated_seeds=True)
        lowest = groups[question].runs[0].path
        assigned[question] = next(r for r in members if r.path == lowest)
    return assigned, groups


def missing_run_line(question: str) -> str:
    """The sentence shown instead of a question's results when its run was not given."""
    command = RUN_COMMANDS[question]
    return (f"_No {question.upper()} run was given, so this answer has no results yet._ Produce it with "
            f"`{command}` (it writes `runs/{question}`), then regenerate with `reid report runs/q8 runs/q11`.")
