#!/usr/bin/env bash
# The accelerator check: forward throughput and model FLOP utilisation at a GPU-sized config,
# the API's batching gain with 16 clients, and a corpus job against the model alone; then one
# summary. Run it from the repository root on a machine with an NVIDIA GPU:
#
#     bash bench/accelerator.sh [OUT_DIR]      # about 8 minutes; logs and summary in OUT_DIR
#
# JAX's CUDA build: kept when JAX already runs on the GPU (the lent H200 image has JAX with
# its CUDA 13 plugin), else installed with pip ("jax[cuda12]"), from ./.whl when that folder
# holds wheels (a machine without network), from PyPI otherwise. The project itself is
# installed without its pinned CPU JAX, so the GPU build stays.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-accelerator-out}}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

pip_install() {  # from ./.whl when there are wheels, else from PyPI
  if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --find-links .whl "$@"
  else
    $PY -m pip install -q "$@"
  fi
}

on_gpu() { $PY -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; }

if ! on_gpu; then
  echo "installing JAX's CUDA build"
  pip_install "jax[cuda12]" || echo "could not install JAX's CUDA build" >&2
fi
# The project's own dependencies, but not its CPU JAX pins (jax, jaxlib), and flax/optax/
# orbax only where missing: the GPU image's builds of those stay.
deps=$($PY - <<'PY'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
keep = [d for d in deps if not d.split("=")[0].split("[")[0] in {"jax", "jaxlib"}]
print(" ".join(keep))
PY
)
for dep in $deps; do
  name=${dep%%[=\[]*}
  $PY -c "import importlib.metadata as m; m.version('$name')" 2>/dev/null || pip_install "$dep"
done
$PY -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null \
  || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

$PY -c "import jax; d = jax.devices()[0]; print(f'{d.device_kind} ({d.platform} x{jax.device_count()}, jax {jax.__version__})')" \
  > "$OUT/device.txt" 2>&1
on_gpu || echo "warning: JAX is not running on a GPU: figures below are the CPU's" >&2

# Each step has its own limit so that one stuck step cannot eat the others' time.
timeout 240 $PY bench/forward.py --preset glam-small --batch 32 --seq 512 --rounds 10 \
  --peak-n 8192 2>&1 | tee "$OUT/forward.txt"
timeout 180 $PY bench/api.py --clients 16 --requests 128 2>&1 | tee "$OUT/api.txt"
timeout 150 $PY -m bench.jobs --backends sqlite 2>&1 | tee "$OUT/jobs.txt"

echo
$PY -m bench.accelerator_summary "$OUT" | tee "$OUT/summary.txt"
