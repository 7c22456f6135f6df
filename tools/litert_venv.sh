#!/usr/bin/env bash
# The LiteRT engine's own Python: onnx2tf 2.x needs Python >= 3.12 and pins onnx and
# onnxruntime versions older than the project's, so it lives in a separate virtual
# environment (default .venv312 in the checkout; anan-onnx finds it there, or through
# ANAN_LITERT_PYTHON=/path/to/python). onnx2tf is installed --no-deps with only what its
# default flatbuffer_direct backend imports: no TensorFlow (docs/engines.md).
#
#   tools/litert_venv.sh [VENV_DIR]      (PYTHON312=/path/to/python3.12 to choose the interpreter)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$here/.venv312}"
python="${PYTHON312:-}"
if [ -z "$python" ]; then  # the first Python 3.12 that runs (a pyenv shim may not)
  for candidate in python3.12 /root/.pyenv/versions/3.12*/bin/python /usr/bin/python3.12; do
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      python="$candidate"; break
    fi
  done
fi
[ -n "$python" ] || { echo "no Python 3.12 found: set PYTHON312=/path/to/python3.12" >&2; exit 1; }
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q --no-deps onnx2tf==2.6.9
"$venv/bin/pip" install -q numpy==2.2.6 onnx==1.20.1 onnxruntime==1.26.0 ai-edge-litert==2.1.2 \
  sng4onnx==2.0.1 sne4onnx==2.0.1 psutil==5.9.5 flatbuffers==25.12.19 ml-dtypes==0.5.4 \
  protobuf h5py==3.14.0 onnxsim==0.6.5 onnxoptimizer==0.4.2 onnxscript==0.6.2 tqdm
echo "LiteRT engine ready: $venv/bin/python"
