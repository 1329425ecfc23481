#!/usr/bin/env bash
# Installs llama-cpp-python into the active Python from a cached wheel; builds (and caches) the wheel
# only when none matches. PyPI ships llama-cpp-python as source only: a build takes ~5-6 minutes on
# 2 cores, a cached install a few seconds. CI should keep the cache directory between runs.
#
#   PIP_WHEEL_DIR       cache directory (default ~/.cache/guardproxy-wheels)
#   LLAMA_CPP_VERSION   version to install (default below)
#   CMAKE_ARGS          build flags (default: portable CPU build, no native tuning, no llava)
#   PYTHON              interpreter (default: python)
set -euo pipefail

version="${LLAMA_CPP_VERSION:-0.3.36}"
wheel_dir="${PIP_WHEEL_DIR:-$HOME/.cache/guardproxy-wheels}"
python="${PYTHON:-python}"
# Portable: a wheel built with -march=native could crash with SIGILL on another CI runner.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}"

mkdir -p "$wheel_dir"
shopt -s nullglob
# The wheel is tagged py3-none-<platform> (ctypes bindings): one build serves every Python version.
cached=("$wheel_dir"/llama_cpp_python-"$version"-*.whl)
if [ ${#cached[@]} -eq 0 ]; then
    echo "install_llama_cpp: no cached wheel for llama-cpp-python $version in $wheel_dir; building (~6 min)" >&2
    "$python" -m pip wheel --no-deps "llama-cpp-python==$version" -w "$wheel_dir"
else
    echo "install_llama_cpp: using ${cached[0]}" >&2
fi
# --only-binary: never fall back to a silent source build here; its dependencies come from the index.
"$python" -m pip install --find-links "$wheel_dir" --only-binary llama-cpp-python "llama-cpp-python==$version"
