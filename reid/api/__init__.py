"""Use a trained model: :func:`load` a run or checkpoint, then embed, evaluate and search.

- :mod:`reid.api.loaded` — :func:`load` and :class:`LoadedModel`;
- :mod:`reid.api.inputs` — paths, folders, PIL images, arrays, tensors → uint8 batches;
- :mod:`reid.api.feature_set` — features with their image names, saved as ``.safetensors``.
"""

from reid.api.feature_set import FeatureSet
from reid.api.loaded import LoadedModel, SearchResult, checkpoint_of, load

__all__ = ["FeatureSet", "LoadedModel", "SearchResult", "checkpoint_of", "load"]
