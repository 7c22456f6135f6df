#!/usr/bin/env bash
# The test command for a fresh machine: installs what the tests need where it is missing,
# then runs pytest with this script's arguments.
#
#   tools/test.sh                                             # both tiers (CI runs this)
#   tools/test.sh -m "not cpp and not node and not browser"   # Python only, installs no tools
#   tools/test.sh -q tests/runtime -x                         # any pytest arguments, both tiers
#   .venv/bin/pytest                                          # the fast tier alone
#
# What it installs, each only when missing (Debian/Ubuntu, apt-get update once):
#   .venv with anan-onnx and its keras + dev extras     2.2 GB, ~4 min on 2 cores (pip)
#   cmake and g++ (C++ example, marker cpp)             ~20 MB download (apt)
#   Node.js >= 18 with npm (Node example, marker node)  ~50 MB download (apt)
#   chromium (browser tests, marker browser)            ~80 MB download, ~300 MB installed
#   .venv312: onnx2tf + LiteRT, Python 3.12 (marker litert)  ~0.3 GB, ~1.5 min (pip;
#     tools/litert_venv.sh; needs a Python 3.12, PYTHON312=... names it)
# The apt part takes about 1-3 minutes, depending on the mirror.
# A marker deselected by -m "not X" skips installing its tools. The tests themselves then
# fetch the onnxruntime C++ SDK (apt download into third_party/, not installed) and the
# Node example's npm packages on their first run. Without root and without sudo, missing
# tools are named and the script stops (exit 2). ANAN_VENV names another virtual
# environment to use instead of .venv (it is created and filled the same way).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "tools/test.sh: $*" >&2; }
args=" $* "
wanted() { [[ "$args" != *"not $1"* ]]; }  # the marker is not deselected by -m "not $1"

# --- Python: the virtual environment -------------------------------------------------------
python=${PYTHON:-python3}
venv=${ANAN_VENV:-.venv}
if [[ ! -x $venv/bin/python ]]; then
  say "creating $venv with $python"
  "$python" -m venv "$venv"
fi
# find_spec: is each package there (without paying for importing TensorFlow)?
needed="anan_onnx pytest pytest_cov xdist hypothesis tensorflow tf2onnx keras scipy sklearn matplotlib onnxslim playwright openvino tract"
if ! "$venv/bin/python" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))' $needed 2>/dev/null; then
  say "installing anan-onnx[keras,dev] into $venv (about 2.2 GB; ~4 min on 2 cores) ..."
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e '.[keras,dev]' -c constraints.txt
fi

# the LiteRT engine's own Python 3.12 environment (onnx2tf pins older onnx/onnxruntime)
# (only for a run without -m, or whose -m names litert: a quick -m "not cpp ..." run stays
# Python-only)
if wanted litert && [[ "$args" != *" -m "* || "$args" == *litert* ]] \
  && [[ -z ${ANAN_LITERT_PYTHON:-} && ! -x .venv312/bin/python ]]; then
  say "creating .venv312 for the LiteRT engine (onnx2tf, ai-edge-litert; ~1.5 min) ..."
  tools/litert_venv.sh
fi

# --- tools outside Python --------------------------------------------------------------------
packages=()
if wanted cpp; then
  command -v cmake >/dev/null || packages+=(cmake)
  command -v c++ >/dev/null || packages+=(g++)
fi
if wanted node || wanted browser; then
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if ((major < 18)); then
    packages+=(nodejs npm)
  elif ! command -v npm >/dev/null; then
    packages+=(npm)
  fi
fi
if wanted browser; then
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || packages+=(chromium)
fi
if ((${#packages[@]})); then
  sudo=()
  if ((EUID != 0)) && command -v sudo >/dev/null; then
    sudo=(sudo)
  fi
  if ! command -v apt-get >/dev/null || ((EUID != 0 && ${#sudo[@]} == 0)); then
    say "missing ${packages[*]}, and no apt-get with root or sudo to install them:" \
      "install them, or run tools/test.sh -m \"not cpp and not node and not browser\""
    exit 2
  fi
  say "installing ${packages[*]} with apt-get (a few hundred MB at most; ~1-3 min) ..."
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${packages[@]}" >/dev/null
fi

# --- the tests -----------------------------------------------------------------------------
# With arguments: one pytest run over both tiers, with them (e.g. -x tests/runtime).
# Without: the fast tier (what plain `pytest` runs; with coverage and its floor, from
# pyproject.toml), then the integration tier; the exit status is the first failure's.
pytest=("$venv/bin/python" -m pytest)
if (($#)); then
  exec "${pytest[@]}" --tier all "$@"
fi
status=0
start=$SECONDS
"${pytest[@]}" --tier fast --cov --cov-report=term:skip-covered || status=$?
fast=$((SECONDS - start))
start=$SECONDS
"${pytest[@]}" --tier integration || { s=$?; ((status)) || status=$s; }
say "fast tier ${fast} s, integration tier $((SECONDS - start)) s"
exit "$status"
