"""The workload every model benchmark shares: a spec, its data in memory, and a seeded model.

The default is the assignment's Q8 setting (``specs/q8.toml``: ResNet-18, last stride 1,
128×128 crops, batch 32, 230 training identities). ``quick`` shrinks it to seconds (10
identities of 32×32 images, batch 8) for smoke runs and tests.

Example:
    >>> import tempfile
    >>> w = load_workload("specs/q8.toml", quick=True, cache_dir=tempfile.mkdtemp())
    >>> w.batch_size, w.image_size, w.data.train.images is not None
    (8, (32, 32), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from reid.data import build_data
from reid.data.build import ReidData
from reid.errors import ReidError
from reid.model import ReidModel, build_model
from reid.spec import Spec, load_spec

#: ``--set`` overrides of a quick (smoke) run: a tiny synthetic set and small batches.
QUICK_OVERRIDES = [
    "data.dataset=\"synthetic\"", "data.identities=10", "data.images_per_identity=4", "data.train_ids=6",
    "data.height=32", "data.width=32", "data.cache=\"memory\"", "sampler.type=\"random\"", "sampler.batch_size=8",
    "eval.batch_size=16", "schedule.warmup_epochs=0",
]


@dataclass
class Workload:
    """A spec with its data decoded into memory.

    Attributes:
        spec: the experiment spec (the benchmarks' settings come from it).
        data: train / query / gallery image sets, held in RAM.
        spec_path: the spec file, for benchmarks that run ``reid run`` in a subprocess.
        overrides: the ``--set`` overrides applied to it.
        cache_dir: where generated data is cached (``None``: reid's default).
    """

    spec: Spec
    data: ReidData
    spec_path: Path
    overrides: list[str]
    cache_dir: Path | None = None

    @property
    def batch_size(self) -> int:
        """Images per training batch (``p × k`` for a PK sampler)."""
        s = self.spec.sampler
        return s.p * s.k if s.type == "pk" else s.batch_size

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the crops."""
        return self.spec.data.height, self.spec.data.width

    def model(self) -> ReidModel:
        """A freshly initialised model of the spec (same seed, same weights every call), fp32, contiguous."""
        torch.manual_seed(self.spec.seed)
        return build_model(self.spec.model, self.spec.head, num_classes=self.data.num_classes,
                           input_size=(3, *self.image_size))

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The spec's normalisation constants shaped (1, 3, 1, 1)."""
        a = self.spec.augment
        return torch.tensor(a.mean).view(1, 3, 1, 1), torch.tensor(a.std).view(1, 3, 1, 1)


def load_workload(spec_path: str | Path, quick: bool = False, cache_dir: str | Path | None = None,
                  overrides: list[str] | None = None) -> Workload:
    """Read ``spec_path`` (plus ``overrides``; plus :data:`QUICK_OVERRIDES` with ``quick``) and load its data.

    Raises:
        ReidError: the spec is invalid, or its training images do not fit in memory (the
            plain-PyTorch baselines index the decoded tensor directly).
    """
    sets = (QUICK_OVERRIDES if quick else []) + list(overrides or [])
    spec = load_spec(spec_path, sets)
    data = build_data(spec.data, cache_dir=cache_dir)
    if data.train.images is None or data.gallery.images is None:
        raise ReidError("the benchmarks need the dataset decoded in memory", where="data.cache",
                        fix='use a smaller dataset or --set data.cache="memory"')
    return Workload(spec, data, Path(spec_path), sets, Path(cache_dir) if cache_dir is not None else None)
