#!/usr/bin/env bash
# Prepare, on this machine, what a lent GPU machine needs for bench/gpu_session.sh (issue 21), in .gpu/ (git-ignored):
#   .gpu/wheels/        the packages the GPU image lacks (its list: the device tool's KINDS.md), pinned to this venv's
#                       versions; SQLAlchemy's pure-Python wheel, pydantic-core's for CPython 3.11-3.13 (the session
#                       installs whichever matches)
#   .gpu/news_stream/   the news_stream files' headline column only, gzipped (the benchmark's real headlines)
# The tracked tree (~52 MB) plus .gpu/ must stay under the 64 MiB that travels; this prints the total.
#   bash bench/gpu_prepare.sh
# Then, with the device tool: run(command="bash bench/gpu_session.sh", carry=[".gpu"], timeout_s=540).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/news_stream
PY=.venv/bin/python
pinned() { $PY -m pip freeze 2>/dev/null | grep -i -E "^($1)==" ; }
PURE="alembic|annotated-types|beautifulsoup4|datasketch|mako|pydantic|pydantic-settings|python-dotenv|pytickersymbols|soupsieve|trieregex|truststore|typing-inspection"
BINARY="pydantic[-_]core"
$PY -m pip wheel -q --no-deps -w .gpu/wheels $(pinned "$PURE")  # builds a wheel where only an sdist exists (trieregex)
for v in 3.11 3.12 3.13; do
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version "$v" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/wheels $(pinned "$BINARY")
done
$PY -m pip download -q --no-deps --only-binary=:all: --platform any --python-version 3.12 --implementation py \
  -d .gpu/wheels $(pinned "sqlalchemy")  # its C speed-ups are optional: one wheel for every Python
$PY - <<'PY'
import csv, gzip
from pathlib import Path
for path in sorted(Path("../shared/data/news_stream").glob("*.csv")):
    with open(path, newline="", encoding="utf-8") as src, gzip.open(f".gpu/news_stream/{path.name}.gz", "wt", newline="", encoding="utf-8") as dst:
        out = csv.writer(dst)
        out.writerow(["headline"])
        out.writerows([row["headline"]] for row in csv.DictReader(src))
PY
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
extra=$(du -sb .gpu | cut -f1)
echo "tracked $((tracked / 1048576)) MiB + .gpu $((extra / 1048576)) MiB = $(((tracked + extra) / 1048576)) MiB (limit 64)"
