"""`make audit` (a step of `make test`): pip-audit over the installed environment, with an honest verdict.

    python tools/audit.py [--strict] [--from-json FILE]

pip-audit asks PyPI's vulnerability data about every installed package (`https://pypi.org/pypi/NAME/VERSION/json`);
the local editable `finsent` is skipped (`--skip-editable`: it is not on PyPI). Vulnerabilities listed in
SECURITY.md's "Ignored vulnerabilities" table are reported as ignored, with the reason given there. A package with
a local version label (`torch 2.13.0+cpu`, the CPU wheel) is not on PyPI under that version: it is audited again as
its public release (`torch==2.13.0`), which has the same source and the same advisories.

Exit status and what it means:
- 0 `audit passed`: every package was checked; no known vulnerability that SECURITY.md does not ignore.
- 1 `audit FAILED`: a known vulnerability, not ignored: the build fails until the package is upgraded or the
  vulnerability is added to SECURITY.md with a reason.
- 0 with `NOT AUDITED` (3 with --strict or FINSENT_AUDIT_STRICT=1): the vulnerability service could not be reached,
  or could not answer for some packages (an offline machine, a registry mirror without PyPI's JSON API). That is not
  a pass and is said so on its own line; it does not fail a build on a machine that cannot know.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECURITY_MD = ROOT / "SECURITY.md"
IGNORE_SECTION = "## Ignored vulnerabilities"
_VULN_ID = re.compile(r"^(?:PYSEC|GHSA|CVE|OSV|GSD|BIT)-[\w.-]+$")
# pip-audit's skip reason for a package it found no PyPI release of: "... could not be audited: torch (2.13.0+cpu)"
_LOCAL_VERSION = re.compile(r": (?P<name>[^ ]+) \((?P<version>[^()+]+)\+[^()]+\)$")
EXIT_VULNERABLE = 1
EXIT_NOT_AUDITED = 3
TIMEOUT_S = 600


@dataclass
class Verdict:
    """What one audit found."""

    audited: list[str] = field(default_factory=list)  # "name version"
    vulnerable: list[tuple[str, str, str, list[str]]] = field(default_factory=list)  # (package, version, id, fixes)
    ignored: list[tuple[str, str, str]] = field(default_factory=list)  # (package, version, id)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (package, reason)
    error: str | None = None  # pip-audit itself failed (no answer at all)


def ignore_list(path: Path = SECURITY_MD) -> dict[str, str]:
    """Vulnerability id -> why it is ignored, from the table under '## Ignored vulnerabilities' in SECURITY.md."""
    if not path.exists():
        return {}
    ids: dict[str, str] = {}
    in_section = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_section = line.strip() == IGNORE_SECTION
            continue
        if in_section and line.startswith("|"):
            cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            if cells and _VULN_ID.match(cells[0]):  # | id | package | why it is ignored | review by |
                why, review = (cells + ["", "", ""])[2:4]
                ids[cells[0]] = why + (f" (review by {review})" if review else "")
    return ids


def run_pip_audit(args: list[str]) -> tuple[dict | None, str]:
    """pip-audit's JSON report (or None) and its last stderr line."""
    command = [sys.executable, "-m", "pip_audit", "-f", "json", "--progress-spinner", "off", "--desc", "off", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"pip-audit did not finish in {TIMEOUT_S} s"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    try:
        return json.loads(done.stdout), lines[-1] if lines else ""
    except json.JSONDecodeError:
        return None, (lines[-1] if lines else f"pip-audit exited {done.returncode} with no report")[:300]


def judge(report: dict, ignored_ids: dict[str, str], verdict: Verdict | None = None) -> Verdict:
    """Fold one pip-audit JSON report into a verdict."""
    verdict = verdict or Verdict()
    for dep in report.get("dependencies", []):
        name = dep.get("name", "?")
        if "skip_reason" in dep:
            verdict.skipped.append((name, dep["skip_reason"]))
            continue
        version = dep.get("version", "?")
        verdict.audited.append(f"{name} {version}")
        for vuln in dep.get("vulns", []):
            ids = {vuln.get("id", "?"), *vuln.get("aliases", [])}
            known = sorted(ids & set(ignored_ids))
            if known:
                verdict.ignored.append((name, version, known[0]))
            else:
                verdict.vulnerable.append((name, version, vuln.get("id", "?"), vuln.get("fix_versions", [])))
    return verdict


def audit(ignored_ids: dict[str, str]) -> Verdict:
    """Audit the running interpreter's environment (and public releases of locally labelled versions)."""
    report, stderr = run_pip_audit(["--skip-editable"])
    if report is None:
        return Verdict(error=stderr or "pip-audit failed")
    verdict = judge(report, ignored_ids)
    # torch 2.13.0+cpu is not on PyPI under its local label: audit the public release it was built from.
    local = [(i, m) for i, (_, reason) in enumerate(verdict.skipped) if (m := _LOCAL_VERSION.search(reason))]
    if local:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            fh.write("".join(f"{m['name']}=={m['version']}\n" for _, m in local))
        try:
            again, _ = run_pip_audit(["-r", fh.name, "--no-deps", "--disable-pip"])
        finally:
            os.unlink(fh.name)
        if again is not None:
            for index, _ in reversed(local):
                del verdict.skipped[index]
            judge(again, ignored_ids, verdict)
    return verdict


def report_and_exit_code(verdict: Verdict, ignored_ids: dict[str, str], *, strict: bool) -> tuple[str, int]:
    """The text to print and the exit status, as documented above."""
    lines = []
    for package, version, vuln_id in verdict.ignored:
        lines.append(f"ignored {vuln_id} in {package} {version}: {ignored_ids.get(vuln_id, '')} (SECURITY.md)")
    if verdict.vulnerable:
        for package, version, vuln_id, fixes in verdict.vulnerable:
            fixed = f"fixed in {', '.join(fixes)}" if fixes else "no fixed release yet"
            lines.append(f"VULNERABLE {package} {version}: {vuln_id} ({fixed})")
        lines.append(
            f"pip-audit: audit FAILED: {len(verdict.vulnerable)} known vulnerabilities; upgrade, or add them to "
            "SECURITY.md's ignore list with a reason"
        )
        return "\n".join(lines), EXIT_VULNERABLE
    if verdict.error or verdict.skipped:
        total = len(verdict.audited) + len(verdict.skipped)
        if verdict.error:
            why = f"pip-audit could not run or reach its vulnerability service: {verdict.error}"
        elif len(verdict.skipped) == total:
            why = (
                f"none of the {total} packages could be checked (e.g. {verdict.skipped[0][1]}); PyPI's per-release "
                "JSON API does not answer from here"
            )
        else:
            names = ", ".join(f"{name} ({reason})" for name, reason in verdict.skipped[:5])
            why = f"{len(verdict.skipped)} of {total} packages could not be checked: {names}"
        lines.append(f"pip-audit: NOT AUDITED: {why}. This is not a pass: run `make audit` where pypi.org answers.")
        return "\n".join(lines), EXIT_NOT_AUDITED if strict else 0
    lines.append(
        f"pip-audit: audit passed: {len(verdict.audited)} packages, no known vulnerabilities"
        + (f" ({len(verdict.ignored)} ignored, see SECURITY.md)" if verdict.ignored else "")
    )
    return "\n".join(lines), 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strict", action="store_true", help="exit 3 when not every package could be audited")
    parser.add_argument("--from-json", type=Path, help="judge this pip-audit JSON report instead of running it")
    args = parser.parse_args(argv)
    strict = args.strict or os.environ.get("FINSENT_AUDIT_STRICT") == "1"
    ignored_ids = ignore_list()
    if args.from_json:
        verdict = judge(json.loads(args.from_json.read_text()), ignored_ids)
    else:
        verdict = audit(ignored_ids)
    text, code = report_and_exit_code(verdict, ignored_ids, strict=strict)
    print(text, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
