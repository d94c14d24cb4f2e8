#!/usr/bin/env bash
# Prints the CMake flags llama-cpp-python is built with on this machine. One source for
# scripts/install.sh and the Ansible role (which runs it on the board), so that both name the
# wheel cache folder alike and a machine set up both ways builds llama.cpp once.
#
# On x86 the default -march=native build segfaults in the first decode on CPUs with AMX, so the
# instruction sets are chosen here: AVX2 always, AVX-512 and VNNI when the CPU has them
# (measured: prompts read ~18 % faster, tokens ~10 %), AMX never. On aarch64 (a Pi) the native
# build is fine: nothing is printed.
set -euo pipefail

[ "$(uname -m)" = "x86_64" ] || exit 0
cpu_has() { grep -qw "$1" /proc/cpuinfo; }
flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
flags="$flags -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF"
if cpu_has avx512f && cpu_has avx512cd && cpu_has avx512vl && cpu_has avx512dq && cpu_has avx512bw; then
  flags="$flags -DGGML_AVX512=ON"
  if cpu_has avx512vbmi; then flags="$flags -DGGML_AVX512_VBMI=ON"; fi
  if cpu_has avx512_vnni; then flags="$flags -DGGML_AVX512_VNNI=ON"; fi
  if cpu_has avx512_bf16; then flags="$flags -DGGML_AVX512_BF16=ON"; fi
else
  flags="$flags -DGGML_AVX512=OFF"
fi
if cpu_has avx_vnni; then flags="$flags -DGGML_AVX_VNNI=ON"; fi
echo "$flags"
