from pathlib import Path

import pytest

from edge.models import catalog


def test_embedded_profile_resolves_to_installed_files(tmp_path: Path) -> None:
    roles = catalog.profile("embedded")
    assert set(roles) == {"vad", "asr", "llm", "tts"}
    vad = catalog.package_file(catalog.entry(roles["vad"])["file"])
    assert vad.stat().st_size == catalog.entry(roles["vad"])["size"]


def _small_model(tmp_path: Path, sha: str, size: int) -> dict[str, object]:
    return {
        "chunks": ["silero_vad/data/silero_vad.onnx", "silero_vad/data/silero_vad_16k_op15.onnx"],
        "assembled": "small.bin",
        "size": size,
        "sha256": sha,
    }


def test_assembly_verifies_and_is_done_once(tmp_path: Path) -> None:
    parts = [
        catalog.package_file("silero_vad/data/silero_vad.onnx"),
        catalog.package_file("silero_vad/data/silero_vad_16k_op15.onnx"),
    ]
    blob = b"".join(p.read_bytes() for p in parts)
    import hashlib

    model = _small_model(tmp_path, hashlib.sha256(blob).hexdigest(), len(blob))
    target = catalog.assemble_chunks(model, tmp_path)
    assert target.read_bytes() == blob
    mtime = target.stat().st_mtime_ns
    assert catalog.assemble_chunks(model, tmp_path).stat().st_mtime_ns == mtime  # not redone


def test_wrong_digest_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    model = _small_model(tmp_path, "0" * 64, 1)
    with pytest.raises(catalog.ModelError, match="expected"):
        catalog.assemble_chunks(model, tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_package_is_named() -> None:
    with pytest.raises(catalog.ModelError, match="not_a_package"):
        catalog.package_file("not_a_package/model.bin")
