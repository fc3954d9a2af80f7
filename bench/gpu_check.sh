#!/usr/bin/env bash
# The GPU check in one command, under 10 minutes on one GPU: every CUDA test (pytest -m gpu),
# then bench/gpu.py. Run it from a checkout on a machine with CUDA:
#
#     bash bench/gpu_check.sh                 # `python`, or $PYTHON, with torch (CUDA), spandrel,
#                                             # safetensors and pytest: pip install -e ".[test]"
#
# Exit status: non-zero when a test failed, the benchmark failed, or either ran out of time.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

# The repository root is the package nexus_upscaler: import this checkout (not an installed
# copy) through a folder that links to it, first on the path.
link=$(mktemp -d)
trap 'rm -rf "$link"' EXIT
ln -s "$PWD" "$link/nexus_upscaler"
export PYTHONPATH="$link${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" - <<'PY' || exit 1
import torch
assert torch.cuda.is_available(), "torch sees no CUDA device: nothing to check"
import nexus_upscaler, spandrel  # noqa: F401
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}")
print(f"nexus_upscaler from {nexus_upscaler.__file__}")
PY

status=0
echo "== GPU tests"
timeout 240 "$PYTHON" -m pytest -m gpu tests/test_gpu.py -q -ra -p no:cacheprovider || status=$?
echo "== bench/gpu.py"
timeout 330 "$PYTHON" bench/gpu.py --budget 270 || status=$?
exit $status
