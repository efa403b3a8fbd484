"""The data layer: dataset formats, the synthetic pedestrian renderer, splits, image sets,
samplers, batched augmentation and a colour-histogram baseline.

Modules: :mod:`~reid.data.formats` (on-disk layouts, ``DATASETS``),
:mod:`~reid.data.synthetic` (the renderer package), :mod:`~reid.data.split` (identity split and
query / gallery rules), :mod:`~reid.data.imageset` (decoding, memory cache or streaming),
:mod:`~reid.data.build` (:func:`build_data`), :mod:`~reid.data.sampler` (PK and random
batches), :mod:`~reid.data.transforms` (augmentation), :mod:`~reid.data.loaders`
(``TrainLoader``, ``eval_batches``), :mod:`~reid.data.describe` (typed counts, classifier size, triplet count),
:mod:`~reid.data.baseline` (histogram nearest neighbour), :mod:`~reid.data.cache_dir` (where generated data is kept).
"""

from reid.data.build import ReidData, build_data, prepare_splits
from reid.data.cache_dir import default_cache_dir
from reid.data.formats import DATASETS, Sample, Splits
from reid.data.imageset import ImageSet

__all__ = ["DATASETS", "ImageSet", "ReidData", "Sample", "Splits", "build_data", "default_cache_dir", "prepare_splits"]
