"""Downloads one file: resumable, verified before use, moved into place atomically.

The bytes go to `<target>.part`. An interrupted download resumes from where it stopped with an
HTTP Range request (a server that ignores Range sends the whole file again, and we start over).
Only when the size and sha256 match is the file renamed to its final name, so a half-written or
corrupted file is never used. A wrong digest deletes the part file: retrying starts clean.

Standard library only (plus tqdm for the progress bar when it is installed), so an Ansible
controller can run the model manager from a source checkout with a plain Python 3.11.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.errors import DownloadError

BLOCK = 1 << 20
USER_AGENT = "edge-model-manager/1"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _progress(total: int | None, initial: int, label: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # a bare controller: no bar, just the start and end lines
        return None
    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=label,
        file=sys.stderr,
        disable=None,  # off when stderr is not a terminal (logs, CI)
    )


def download(
    url: str,
    target: Path,
    *,
    sha256: str | None,
    size: int | None = None,
    timeout: float = 60.0,
    opener: Callable[..., Any] = urllib.request.urlopen,
) -> str:
    """Fetch `url` into `target`; return the file's sha256. With `sha256` given, a file that does
    not match is refused (DownloadError) and never appears at `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = opener(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part file is complete
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if response is not None:
        with response:
            resumed = response.status == 206
            if not resumed:
                have = 0  # the server sent the whole file
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else size
            _check_space(part.parent, (total or 0) - have, target.name)
            bar = _progress(total, have, target.name)
            try:
                with open(part, "ab" if resumed else "wb") as out:
                    while block := response.read(BLOCK):
                        out.write(block)
                        if bar is not None:
                            bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                if getattr(exc, "errno", None) == errno.ENOSPC:
                    raise DownloadError(
                        f"{target.name}: the disk at {part.parent} is full "
                        f"({_free(part.parent)} free); the partial file stays for a resume"
                    ) from None
                raise DownloadError(f"{url}: interrupted ({exc}); run again to resume") from None
            finally:
                if bar is not None:
                    bar.close()
    got = part.stat().st_size
    if size is not None and got != size:
        if got < size:
            raise DownloadError(f"{url}: got {got} of {size} bytes; run again to resume")
        part.unlink()
        raise DownloadError(f"{url}: {got} bytes, the catalog says {size}; deleted")
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise DownloadError(
            f"{target.name}: sha256 {digest} does not match the catalog's {sha256}; "
            "the download was deleted (a corrupted or replaced file)"
        )
    os.replace(part, target)
    return digest


def _free(folder: Path) -> str:
    return f"{shutil.disk_usage(folder).free / 1e6:.0f} MB"


def _check_space(folder: Path, needed: int, name: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"{name}: needs {needed / 1e6:.0f} MB but only {free / 1e6:.0f} MB are free at {folder}"
        )
