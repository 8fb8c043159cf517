#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (issue 21): the `gpu` tests and the host-path tests, then
# bench/gpu.py (raw network, Scorer with and without words, host ceiling on its cores, end to end embedded + SQLite).
# Everything it writes lands in $OUT: device.txt, tests.log, gpu.json, gpu.log. Under 8 minutes on an H100/H200.
#
# Here first:  bash bench/gpu_prepare.sh          (wheels and headlines into .gpu/, git-ignored; prints the size)
# Then:        device run: command "bash bench/gpu_session.sh", carry [".gpu"], timeout_s 540
# Back here:   cp <files_at>/gpu.json bench/results/gpu.json && python bench/report.py   (BENCHMARKS.md)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/finsent-gpu-out}
mkdir -p "$OUT"
[ -d .gpu/wheels ] || { echo "no .gpu/wheels: run bash bench/gpu_prepare.sh here and carry .gpu" >&2; exit 2; }
names=$(ls .gpu/wheels | sed 's/-[0-9].*//' | sort -u)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  --find-links .gpu/wheels $names || exit 3
rm -rf /tmp/site/tests  # trieregex's wheel installs its own top-level `tests` package
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
# the benchmark's headlines, where the code looks for them (../shared/data beside the repository)
mkdir -p ../shared/data/news_stream || { echo "cannot write ../shared beside the repository" >&2; exit 4; }
for f in .gpu/news_stream/*.csv.gz; do gunzip -c "$f" > "../shared/data/news_stream/$(basename "$f" .gz)"; done
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import platform, torch, transformers, tokenizers, os; print('python', platform.python_version(), \
'torch', torch.__version__, 'transformers', transformers.__version__, 'tokenizers', tokenizers.__version__, \
'cores', os.cpu_count())"
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/model/test_gpu.py tests/model/test_host_path.py \
  2>&1 | tee "$OUT/tests.log"
timeout 330 python3 bench/gpu.py --json "$OUT/gpu.json" --headlines 65536 --repeats 3 2>&1 | tee "$OUT/gpu.log"
