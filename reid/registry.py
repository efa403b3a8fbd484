"""One registry per kind of component a spec can name (fast-reid style), at the spec's floor.

A spec names a component by string; :mod:`reid.spec` checks the name against the registry
when it validates, and the builder looks it up here. The registries live in this module
(below the spec, above nothing but :mod:`reid.errors`) and the component modules register
into them, so a component registered from user code is accepted by every spec and built by
every builder without editing the library:

======================  ==================  =================================  =======================================================================================================
registry                spec key            built-ins registered in            factory signature
======================  ==================  =================================  =======================================================================================================
:data:`DATASETS`        data.dataset        :mod:`reid.data.formats`           ``(DataSpec, cache_dir) -> Splits``
:data:`SAMPLERS`        sampler.type        :mod:`reid.data.sampler`           ``(pids, SamplerSpec, seed, rank, world_size) -> batch sampler``
:data:`POOLINGS`        model.pooling       :mod:`reid.model.pooling`          ``() -> nn.Module`` (pools any map to 1×1)
:data:`HEADS`           head.type           :mod:`reid.model.heads`            ``(HeadSpec, dim, num_classes) -> nn.Module``
:data:`CLASSIFIERS`     head.classifier     :mod:`reid.model.classifiers`      ``(HeadSpec, dim, num_classes, bias) -> nn.Module``
:data:`LOSSES`          loss.terms          :mod:`reid.losses`                 a ``LossTerm`` class ``(LossSpec, num_classes, dim)``, or ``(outputs, pids, LossSpec, gather) -> loss``
:data:`TRIPLET_MINING`  loss.mining         :mod:`reid.losses`                 ``(dist, same, diff, margin) -> (sum, count)``
:data:`RENDERERS`       data.synth_version  :mod:`reid.data.synthetic`         a ``Renderer`` (its people and its images), named by the version number
:data:`TRAINING_HOOKS`  (every run)         :mod:`reid.engine.training_hooks`  ``(RunBuilder) -> Hook | None``, called in registration order
======================  ==================  =================================  =======================================================================================================

Each registry imports its built-in module the first time it is asked for a name, so the
spec never imports the model, data or loss layers at import time, and the built-ins are
always there when a name is checked.

Example:
    >>> DATASETS.names()[:3], "bnneck" in HEADS
    (['cuhk03', 'dukemtmc', 'folder'], True)
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from reid.errors import ReidError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """A name → factory table for one kind of component.

    Args:
        kind: what the components are, for messages (``"dataset"``).
        builtins: module that registers the built-in components; imported on the first lookup.
        home: where users find the registry (``"reid.registry.DATASETS"``), for messages.

    Example:
        >>> ACTIVATIONS = Registry("activation")
        >>> @ACTIVATIONS.register("double")
        ... def double(x): return 2 * x
        >>> ACTIVATIONS.get("double")(4), ACTIVATIONS.names(), "half" in ACTIVATIONS
        (8, ['double'], False)
    """

    def __init__(self, kind: str, builtins: str | None = None, home: str | None = None):
        self.kind, self.home = kind, home
        self._builtins = builtins
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``fn`` under ``name`` (a name can be registered once)."""

        def add(fn: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return add

    def _loaded(self) -> dict[str, T]:
        if self._builtins is not None:
            module, self._builtins = self._builtins, None
            importlib.import_module(module)
        return self._items

    def get(self, name: str) -> T:
        """The factory registered as ``name``; a :class:`ReidError` listing the registered names otherwise."""
        try:
            return self._loaded()[name]
        except KeyError:
            raise ReidError(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        """The message for an unregistered ``name``: what was asked, every registered choice and how to add one."""
        how = f" (register your own with @{self.home}.register)" if self.home else ""
        return f"unknown {self.kind} {name!r}: registered {self.kind}s are {', '.join(self.names())}{how}"

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._loaded())

    def entries(self) -> list[tuple[str, T]]:
        """``(name, component)`` pairs in the order they were registered (built-ins first).

        Example:
            >>> [name for name, _ in TRAINING_HOOKS.entries()][:3]
            ['freeze_backbone', 'clip_grad_norm', 'ema']
        """
        return list(self._loaded().items())

    def __contains__(self, name: str) -> bool:
        return name in self._loaded()


ARCHS: Registry = Registry("architecture", "reid.model.blocks", "reid.registry.ARCHS")
DATASETS: Registry = Registry("dataset", "reid.data.formats", "reid.registry.DATASETS")
SAMPLERS: Registry = Registry("sampler", "reid.data.sampler", "reid.registry.SAMPLERS")
POOLINGS: Registry = Registry("pooling", "reid.model.pooling", "reid.registry.POOLINGS")
HEADS: Registry = Registry("head", "reid.model.heads", "reid.registry.HEADS")
CLASSIFIERS: Registry = Registry("classifier", "reid.model.classifiers", "reid.registry.CLASSIFIERS")
LOSSES: Registry = Registry("loss term", "reid.losses", "reid.registry.LOSSES")
TRIPLET_MINING: Registry = Registry("triplet mining rule", "reid.losses", "reid.registry.TRIPLET_MINING")
RENDERERS: Registry = Registry("synthetic renderer version", "reid.data.synthetic", "reid.registry.RENDERERS")
TRAINING_HOOKS: Registry = Registry("training hook", "reid.engine.training_hooks", "reid.registry.TRAINING_HOOKS")
