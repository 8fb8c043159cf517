"""The soak benchmark's 2-minute variant: `bench/soak.py --minutes 2` (a `finsent score` worker on tansu +
PostgreSQL at 70% of the capacity it measured first) must keep its memory flat, its lag bounded and lose nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.faults.harness import ARTIFACTS, REPO, report

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]


def test_two_minute_soak():
    out = ARTIFACTS / "soak.json"
    out.unlink(missing_ok=True)
    logs = ARTIFACTS / "faults" / "test_two_minute_soak"
    command = [sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "2", "--sample-every", "2",
               "--capacity-items", "2000", "--json", str(out), "--log-dir", str(logs)]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=480, cwd=REPO)
    print(run.stdout[-4000:])
    assert out.exists(), f"exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    result = json.loads(out.read_text())
    memory, lag, loss = result["memory"], result["lag"], result["loss"]
    report(
        "soak, 2 minutes at 70% of capacity",
        loss,
        rate_per_s=round(result["rate_per_s"], 1),
        capacity_per_s=round(result["capacity_per_s"], 1),
        memory_growth=memory["growth"] and round(memory["growth"], 4),
        warmup_s=result["warmup_s"],
        rss_mb=[memory["first_quarter_median_mb"], memory["last_quarter_median_mb"]],
        lag_max=lag["max"],
        lag_quarters=[lag["first_quarter_median"], lag["last_quarter_median"]],
        lag_final=lag["final"],
    )
    assert memory["ok"] and memory["growth"] < 0.10, memory
    assert lag["ok"] and lag["drained"] and lag["final"] == 0, {k: v for k, v in lag.items()}
    assert loss["lost"] == 0 and loss["extra_article_rows"] == 0, loss
    assert loss["articles_without_exactly_one_score"] == 0 and loss["score_rows"] == loss["stored"], loss
    assert loss["worker_exit_code"] == 0, loss
    assert run.returncode == 0 and result["ok"], run.stdout[-3000:]
