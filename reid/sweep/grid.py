"""Grid axes (``--grid key=v1,v2``), their product, the directory name of each grid point, and ``--seeds``.

A point's name lists its overrides in the order the axes were given, values written canonically
(TOML parsed, so ``1e-3`` and ``0.001`` name the same directory), characters that are unsafe in a
path replaced by ``_``: ``optim.lr=0.001,loss.margin=0.2``.

Example:
    >>> axis = parse_axis("eval.ranks=[1,5],[1,10]")
    >>> axis.key, axis.values
    ('eval.ranks', ('[1,5]', '[1,10]'))
    >>> [p.name for p in expand([axis])]
    ['eval.ranks=_1+5_', 'eval.ranks=_1+10_']
    >>> parse_seeds("3"), parse_seeds("0,4")
    ([0, 1, 2], [0, 4])
"""

from __future__ import annotations

import hashlib
import itertools
import re
import tomllib
from dataclasses import dataclass

from reid.errors import ReidError

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_NAME = 120


@dataclass(frozen=True)
class Axis:
    """One swept spec key and the values it takes, as the user wrote them (TOML literals)."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class GridPoint:
    """One combination of axis values: ``((key, value), ...)`` in axis order (empty: no grid)."""

    settings: tuple[tuple[str, str], ...]

    @property
    def overrides(self) -> list[str]:
        """The ``--set`` overrides of this point, e.g. ``['optim.lr=1e-3']``."""
        return [f"{k}={v}" for k, v in self.settings]

    @property
    def name(self) -> str:
        """The point's directory name (``''`` for the empty point); see the module docstring."""
        name = _UNSAFE.sub("_", ",".join(f"{k}={canonical(v)}" for k, v in self.settings))
        if len(name) > MAX_NAME:  # keep paths short; the hash keeps names distinct
            name = name[:MAX_NAME - 9] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
        return name


def canonical(raw: str) -> str:
    """A value written one way: TOML-parsed, floats by ``repr``, strings unquoted, list items joined by ``+``.

    Example:
        >>> canonical("1e-3"), canonical('"gem"'), canonical("gem"), canonical("true"), canonical("[1, 5]")
        ('0.001', 'gem', 'gem', 'true', '[1+5]')
    """
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw.strip()
    return _format(value)


def _format(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + "+".join(_format(v) for v in value) + "]"  # "," separates a point's settings
    return str(value) if not isinstance(value, float) else repr(value)


def split_values(text: str) -> list[str]:
    """Split ``v1,v2`` on commas outside brackets and quotes.

    Example:
        >>> split_values('0.1, "a,b", [1,2]')
        ['0.1', '"a,b"', '[1,2]']
    """
    values, depth, quote, current = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += ch
    values.append(current.strip())
    return values


def parse_axis(text: str) -> Axis:
    """Parse one ``--grid key=v1,v2,...`` option."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ReidError(f"--grid {text!r} is not key=v1,v2", where="--grid", fix="write e.g. --grid optim.lr=1e-3,3.5e-4")
    values = split_values(rest)
    if any(v == "" for v in values):
        raise ReidError(f"--grid {text!r} has an empty value", where="--grid", fix="separate values with single commas")
    if len({canonical(v) for v in values}) != len(values):
        raise ReidError(f"--grid {text!r} repeats a value", where="--grid", fix="list each value once")
    return Axis(key, tuple(values))


def expand(axes: list[Axis]) -> list[GridPoint]:
    """Every combination of the axes' values, first axis slowest; one empty point when there are no axes."""
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        raise ReidError("a key is swept by two --grid options", where="--grid", fix="give each key one --grid")
    points = [GridPoint(tuple(zip(keys, combo))) for combo in itertools.product(*(a.values for a in axes))]
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise ReidError("two grid points get the same directory name", where="--grid",
                        fix="use values that differ in letters or digits, not only in punctuation")
    return points


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: a list ``0,1,2`` of seeds, or one number N meaning seeds ``0 … N-1``."""
    try:
        numbers = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        numbers = []
    if not numbers or any(n < 0 for n in numbers):
        raise ReidError(f"--seeds {text!r} is not a count or a list of seeds", where="--seeds",
                        fix="write --seeds 3 (seeds 0, 1, 2) or --seeds 0,1,2")
    seeds = list(range(numbers[0])) if len(numbers) == 1 and "," not in text else numbers
    if not seeds or len(set(seeds)) != len(seeds):
        raise ReidError(f"--seeds {text!r} gives no seeds or repeats one", where="--seeds",
                        fix="write a count of at least 1, or distinct seeds")
    return seeds
