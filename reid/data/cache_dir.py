"""Where reid keeps what it generates (rendered synthetic sets, decoded-image caches).

Its own module so that every data module that caches (:mod:`reid.data.build`, :mod:`reid.data.imageset`) imports
it at module level without importing one another.

Example:
    >>> default_cache_dir().is_absolute()
    True
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$REID_CACHE`` or ``~/.cache/reid``."""
    return Path(os.environ.get("REID_CACHE") or Path.home() / ".cache" / "reid").expanduser()
