"""Fetch a weights file over HTTP(S): sha256-checked, atomic, with a rich progress bar.

torchvision's file names carry the first hex digits of the file's sha256
(``resnet50-0676ba61.pth``); :func:`download` checks the downloaded bytes against that
prefix and only then moves them into place, so a failed or corrupt download never
leaves a file behind (the bytes go to a temporary file beside the destination).

``REID_WEIGHTS_URL`` replaces the URL's folder (``https://download.pytorch.org/models/``)
with a mirror, a local folder served over HTTP, or a test server: the file name stays.

Example:
    >>> sha256_prefix("resnet50-0676ba61.pth")
    '0676ba61'
    >>> mirrored_url("https://download.pytorch.org/models/resnet50-0676ba61.pth", base="http://mirror/w/")
    'http://mirror/w/resnet50-0676ba61.pth'
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from reid.errors import ReidError

#: Environment variable: a URL folder that replaces the weights URL's own (mirrors, tests).
URL_ENV = "REID_WEIGHTS_URL"
TIMEOUT_S = 30
_CHUNK = 1 << 16


def sha256_prefix(filename: str) -> str | None:
    """The sha256 prefix in a torch-hub style name (``name-<hex>.ext``), or None."""
    match = re.search(r"-([0-9a-f]{6,64})\.[A-Za-z0-9]+$", filename)
    return match.group(1) if match else None


def mirrored_url(url: str, base: str | None = None) -> str:
    """``url`` with its folder replaced by ``base`` (default: ``$REID_WEIGHTS_URL``; unset: ``url`` itself)."""
    base = base if base is not None else os.environ.get(URL_ENV)
    if not base:
        return url
    return base.rstrip("/") + "/" + Path(urlparse(url).path).name


def _reason(e: Exception) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"{type(e.reason).__name__}: {e.reason}" if isinstance(e.reason, Exception) else str(e.reason)
    return f"{type(e).__name__}: {e}"


def download(url: str, dest: str | Path, sha256: str | None = None, console: Console | None = None) -> Path:
    """Download ``url`` to ``dest`` with a progress bar; check the sha256 prefix when given.

    Args:
        url: http(s) URL of the file.
        dest: where the file goes (its folder is created).
        sha256: expected hex prefix of the file's sha256 (e.g. from :func:`sha256_prefix`), or None.
        console: where the progress bar goes (default: stderr).

    Raises:
        ReidError: the host cannot be reached, the server refuses (HTTP error), or the bytes do
            not match ``sha256``; ``dest`` is then left untouched and no partial file remains.
    """
    dest = Path(dest)
    fix_by_hand = f"download {url} on a machine that is online and put it at {dest}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "reid"})
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                               TimeRemainingColumn())
                    with Progress(*columns, console=console or Console(stderr=True), transient=True) as progress:
                        task = progress.add_task(f"downloading {dest.name}", total=total)
                        while chunk := response.read(_CHUNK):
                            f.write(chunk)
                            digest.update(chunk)
                            progress.advance(task, len(chunk))
            except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts, resets; ValueError: a malformed URL
                raise ReidError(f"could not download {dest.name} ({_reason(e)})", where=url,
                                fix=f"check the connection (or ${URL_ENV}) and retry, or {fix_by_hand}") from None
        got = digest.hexdigest()
        if sha256 and not got.startswith(sha256):
            raise ReidError(f"downloaded {dest.name} is corrupt: its sha256 starts {got[:len(sha256)]}, expected {sha256};"
                            " nothing was saved", where=url, fix=f"retry, or {fix_by_hand}")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
