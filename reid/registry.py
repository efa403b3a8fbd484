"""One small registry per kind of component (fast-reid style).

A spec names a component by string; the builder looks it up here. Registering is a
decorator, so adding a dataset, backbone, head or loss is one function and one line.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from reid.errors import ReidError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """A name → factory table for one kind of component.

    Example:
        >>> HEADS = Registry("head")
        >>> @HEADS.register("linear")
        ... def linear_head(dim): return dim
        >>> HEADS.get("linear")(4)
        4
        >>> HEADS.names()
        ['linear']
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``fn`` under ``name``."""

        def add(fn: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return add

    def get(self, name: str) -> T:
        """The factory registered as ``name``; a :class:`ReidError` listing the choices otherwise."""
        try:
            return self._items[name]
        except KeyError:
            raise ReidError(
                f"unknown {self.kind} {name!r}",
                fix=f"use one of: {', '.join(sorted(self._items))}",
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
