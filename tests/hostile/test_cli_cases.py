"""The hostile CLI corpus (cli_cases.py) and the hostile files (files/, expected.json), through the real commands."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.hostile.cli_cases import CASES, CliCase

FINSENT = [sys.executable, "-m", "cli"]
FILES = Path(__file__).parent / "files"
REPO = Path(__file__).resolve().parents[2]
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab and newline are fine


def run(case: CliCase, tmp: Path) -> subprocess.CompletedProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    for name, content in case.files.items():
        (tmp / name).write_bytes(content.replace(b"{tmp}", str(tmp).encode()))
    args = [a.replace("{tmp}", str(tmp)) for a in case.args]
    env = {**os.environ, "FINSENT_DATABASE_URL": f"sqlite:///{tmp}/x.db", **case.env}
    env.pop("FINSENT_DASHBOARD_PASSWORD", None)
    env.pop("FINSENT_FEED_TOKEN", None)
    try:
        return subprocess.run(
            [*FINSENT, *args], capture_output=True, text=True, timeout=180, env=env, cwd=REPO, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:  # that case fails, the others still report
        return subprocess.CompletedProcess(exc.cmd, -9, str(exc.stdout or ""), f"timed out: {exc}")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every case, run two at a time (each is its own process; most load little)."""
    root = tmp_path_factory.mktemp("cli")
    with ThreadPoolExecutor(2) as pool:
        futures = {c.name: pool.submit(run, c, root / f"case{i}") for i, c in enumerate(CASES)}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_command_has_its_outcome(case, outcomes):
    out = outcomes[case.name]
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-2000:]
    assert not _CONTROL.search(out.stdout + out.stderr), (out.stdout + out.stderr)[-500:]
    if case.ok:
        assert out.returncode == 0, out.stderr[-2000:]
        assert case.stdout in out.stdout
        return
    assert out.returncode == 1, (out.returncode, out.stdout[-500:], out.stderr[-2000:])
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-2000:]
    assert case.message in lines[0], lines[0]


def test_hostile_files_are_stored_or_rejected_with_their_reason(tmp_path):
    """One backfill over every file in files/: each row stored with its UTC time or rejected naming the problem."""
    expected = json.loads((FILES / "expected.json").read_text(encoding="utf-8"))
    expected.pop("_about")
    names = sorted(expected)
    assert names == sorted(p.name for p in FILES.iterdir() if p.name != "expected.json")
    db = tmp_path / "files.db"
    out = subprocess.run(
        [*FINSENT, "backfill", *(str(FILES / n) for n in names), "--database-url", f"sqlite:///{db}"],
        capture_output=True, text=True, timeout=600, env={**os.environ}, cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    stored = sum(len(e["stored"]) for e in expected.values())
    rejected = sum(len(e["rejected"]) for e in expected.values())
    assert f"stored {stored}, duplicates 0, rejected {rejected}" in out.stdout, out.stdout
    with sqlite3.connect(db) as con:
        for name in names:
            source = Path(name).stem
            rows = con.execute(
                "SELECT a.title, a.published_at FROM articles a JOIN sources s ON s.id = a.source_id WHERE s.name = ?",
                (source,),
            ).fetchall()
            got = {title: _iso(when) for title, when in rows}
            assert got == expected[name]["stored"], name
            reasons = [
                r for (r,) in con.execute("SELECT reason FROM rejects WHERE origin LIKE ? ORDER BY id", (f"{name}:%",))
            ]
            assert len(reasons) == len(expected[name]["rejected"]), (name, reasons)
            for reason, piece in zip(reasons, expected[name]["rejected"], strict=True):
                assert piece in reason, (name, reason)


def _iso(when: str) -> str:
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(when)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()
