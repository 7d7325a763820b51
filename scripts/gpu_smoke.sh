#!/bin/sh
# GPU smoke test (scripts/gpu_smoke.py; see BENCHMARKS.md, "GPU smoke"): the venv's python if there is one,
# else python3. Arguments pass through, e.g. `scripts/gpu_smoke.sh --device cpu --steps 12`.
cd "$(dirname "$0")/.." || exit 2
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
exec "$PY" scripts/gpu_smoke.py "$@"
