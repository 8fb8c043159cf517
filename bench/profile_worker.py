"""Profile the scoring worker's batch path with pyinstrument: where a batch's time goes outside the model.

    python bench/profile_worker.py [--items 2048] [--batch 256] [--out bench/results/profile] [--host-only]

Runs `BatchProcessor.process` (admit → score → store, one transaction per batch) on real headlines into a fresh
SQLite database under pyinstrument's sampling profiler, and writes `<out>.txt` (call tree) and `<out>.html`.
It also prints the share of wall time spent inside the network's forward pass, the part that is model compute.
`--host-only` stubs the network (bench/scoring.py's `HostOnlyNet`): what is left is the pipeline's own Python.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # not bench/ itself: its scoring.py would hide the scoring package


def main() -> None:
    from pyinstrument import Profiler

    from bench.pipeline import Messages
    from bench.scoring import HostOnlyNet
    from core.db import make_engine, make_session_factory, upgrade
    from core.messages import Envelope
    from model.scorer import Scorer
    from scoring.build import build_processor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "profile")
    parser.add_argument("--host-only", action="store_true", help="the network stubbed: the pipeline's own Python")
    args = parser.parse_args()

    scorer = Scorer(device="cpu")
    if args.host_only:
        scorer.net = HostOnlyNet()
    values = Messages().take(args.items + args.batch)
    envelopes = [Envelope(value=v, origin=f"profile:0:{i}") for i, v in enumerate(values)]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'profile.db'}"
        upgrade(url)
        engine = make_engine(url)
        processor = build_processor(session_factory=make_session_factory(engine), scorer=scorer)  # as the CLI does
        if args.host_only:
            processor.targets = None  # the per-company pass needs the real network
        processor.process(envelopes[: args.batch])  # warm-up: caches, dictionaries, first allocation
        forward = 0.0
        original = scorer.net.forward

        def timed_forward(*a, **k):
            nonlocal forward
            import time

            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                forward += time.perf_counter() - start

        scorer.net.forward = timed_forward
        profiler = Profiler(interval=0.001)
        profiler.start()
        for i in range(args.batch, len(envelopes), args.batch):
            processor.process(envelopes[i : i + args.batch])
        profiler.stop()
        engine.dispose()
    session = profiler.last_session
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".txt").write_text(profiler.output_text(unicode=True, show_all=False))
    args.out.with_suffix(".html").write_text(profiler.output_html())
    share = forward / session.duration
    summary = {"items": args.items, "batch": args.batch, "seconds": session.duration, "forward_share": share}
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    print(profiler.output_text(unicode=True, show_all=False)[:4000])
    print(f"{args.items} items in {session.duration:.1f} s; the network's forward pass: {share:.0%} of it")


if __name__ == "__main__":
    main()
