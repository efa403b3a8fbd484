"""Every key a spec can set, read off the schema in :mod:`reid.spec`: its type, default, allowed range and
description — what ``reid keys`` prints, so the list cannot drift from what validation accepts.

Example:
    >>> key = next(k for k in spec_keys() if k.key == "loss.center_weight")
    >>> key.default, key.allowed
    ('0.0', '0 ≤ x ≤ 1')
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel

from reid.errors import ReidError
from reid.registry import Registry
from reid.spec import Spec

_BOUNDS = ((annotated_types.Ge, "≤"), (annotated_types.Gt, "<"), (annotated_types.Le, "≤"), (annotated_types.Lt, "<"))


def registry_of(field: Any) -> Registry | None:
    """The registry whose names a spec field takes (declared in its type: :func:`reid.spec.registered_name`), if any.

    Example:
        >>> from reid.spec import HeadSpec
        >>> registry_of(HeadSpec.model_fields["type"]).names()[:2], registry_of(HeadSpec.model_fields["bias"])
        (['bnneck', 'classifier'], None)
    """
    return next((m for m in field.metadata if isinstance(m, Registry)), None)


@dataclass(frozen=True)
class SpecKey:
    """One settable key: ``key`` as ``--set`` takes it (``loss.margin``), its ``type``, ``default``, ``allowed``
    values (a range, a choice, or ``""`` when any value of the type is allowed) and ``description``."""

    key: str
    type: str
    default: str
    allowed: str
    description: str


def _choices(annotation: Any) -> tuple | None:
    """The values of a ``Literal`` (or of the ``Literal`` inside ``Literal[...] | None``), else None."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    literal = [a for a in typing.get_args(annotation) if typing.get_origin(a) is Literal]
    return typing.get_args(literal[0]) + (None,) if literal else None


def _type_name(annotation: Any) -> str:
    if _choices(annotation) is not None:
        return "choice"
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) < len(typing.get_args(annotation)):  # X | None
        return f"{_type_name(args[0])} or none"
    return str(annotation) if typing.get_origin(annotation) else annotation.__name__


def _allowed(field) -> str:
    choices = _choices(field.annotation)
    if choices is not None:
        return " | ".join("none" if c is None else f'"{c}"' if isinstance(c, str) else str(c) for c in choices)
    lower = [f"{getattr(m, k.__name__.lower())} {sign} " for m in field.metadata for k, sign in _BOUNDS[:2]
             if isinstance(m, k)]
    upper = [f" {sign} {getattr(m, k.__name__.lower())}" for m in field.metadata for k, sign in _BOUNDS[2:]
             if isinstance(m, k)]
    return f"{''.join(lower)}x{''.join(upper)}" if lower or upper else ""


def _default(value: Any) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def spec_tables() -> list[str]:
    """The spec's tables (``data``, ``augment`` … ``runtime``), in schema order.

    Example:
        >>> spec_tables()[:3]
        ['data', 'augment', 'model']
    """
    return [name for name, field in Spec.model_fields.items() if _table(field) is not None]


def _table(field) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def spec_keys(section: str | None = None) -> list[SpecKey]:
    """The keys of every table of :class:`~reid.spec.Spec` (or of ``section`` only), in schema order; defaults as
    a default spec holds them.

    Raises:
        ReidError: ``section`` is not one of :func:`spec_tables`.
    """
    if section is not None and section not in spec_tables():
        raise ReidError(f"no spec table named {section!r}", where="reid keys", fix=f"use one of: {', '.join(spec_tables())}")
    defaults, keys = Spec(), []
    for name, field in Spec.model_fields.items():
        table = _table(field)
        if table is None:
            if section is None:
                keys.append(SpecKey(name, _type_name(field.annotation), _default(getattr(defaults, name)),
                                    _allowed(field), field.description or ""))
            continue
        if section not in (None, name):
            continue
        for key, sub in table.model_fields.items():
            dotted = f"{name}.{sub.alias or key}"
            registry = registry_of(sub)
            allowed = " | ".join(registry.names()) + " (registered)" if registry is not None else _allowed(sub)
            keys.append(SpecKey(dotted, _type_name(sub.annotation), _default(getattr(getattr(defaults, name), key)),
                                allowed, sub.description or ""))
    return keys
