"""tools/audit.py (`make audit`): its verdicts on pip-audit reports, and SECURITY.md's ignore list.

The reports are pip-audit's JSON format, judged with --from-json: no network. `make audit` runs the real thing.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AUDIT = ROOT / "tools" / "audit.py"
_spec = importlib.util.spec_from_file_location("finsent_tools_audit", AUDIT)  # tools/ is scripts, not a package
audit = sys.modules.setdefault("finsent_tools_audit", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(audit)

OK = {"name": "requests", "version": "2.32.4", "vulns": []}
VULNERABLE = {
    "name": "jinja2",
    "version": "3.1.2",
    "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"], "aliases": ["CVE-2024-22195"]}],
}
SKIPPED = {"name": "torch", "skip_reason": "Dependency not found on PyPI and could not be audited: torch (2.13.0+cpu)"}


def run(tmp_path, *dependencies, strict: bool = False) -> subprocess.CompletedProcess:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"dependencies": list(dependencies), "fixes": []}))
    args = [sys.executable, str(AUDIT), "--from-json", str(report)] + (["--strict"] if strict else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_no_vulnerability_passes(tmp_path):
    done = run(tmp_path, OK, OK | {"name": "httpx", "version": "0.28.1"})
    assert done.returncode == 0
    assert done.stdout.strip() == "pip-audit: audit passed: 2 packages, no known vulnerabilities"


def test_a_vulnerability_fails_naming_package_advisory_and_fix(tmp_path):
    done = run(tmp_path, OK, VULNERABLE)
    assert done.returncode == 1
    assert "VULNERABLE jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)" in done.stdout
    assert "audit FAILED: 1 known vulnerabilities" in done.stdout


def test_unaudited_packages_say_so_and_fail_only_when_strict(tmp_path):
    done = run(tmp_path, OK, SKIPPED)
    assert done.returncode == 0
    assert done.stdout.startswith("pip-audit: NOT AUDITED: 1 of 2 packages could not be checked: torch")
    assert "This is not a pass" in done.stdout and "audit passed" not in done.stdout
    assert run(tmp_path, OK, SKIPPED, strict=True).returncode == 3
    everything = run(tmp_path, SKIPPED, SKIPPED | {"name": "numpy"})
    assert "none of the 2 packages could be checked" in everything.stdout
    # A vulnerability found among the packages that could be checked still fails, whatever was skipped.
    assert run(tmp_path, SKIPPED, VULNERABLE).returncode == 1


def test_ignore_list_is_read_from_security_md(tmp_path, monkeypatch):
    security = tmp_path / "SECURITY.md"
    security.write_text(
        "# Security\n\n| id | package | why | review by |\n|---|---|---|---|\n| GHSA-not-this-table | x | y | z |\n\n"
        "## Ignored vulnerabilities\n\n| id | package | why it is ignored | review by |\n|---|---|---|---|\n"
        "| `CVE-2024-22195` | jinja2 | templates are never user input here | 2027-01-01 |\n\n## Later\n"
        "| PYSEC-2099-1 | after | the section | ends |\n"
    )
    why = "templates are never user input here (review by 2027-01-01)"
    assert audit.ignore_list(security) == {"CVE-2024-22195": why}
    monkeypatch.setattr(audit, "SECURITY_MD", security)
    verdict = audit.judge({"dependencies": [VULNERABLE]}, audit.ignore_list(security))
    assert verdict.vulnerable == [] and verdict.ignored == [("jinja2", "3.1.2", "CVE-2024-22195")]
    text, code = audit.report_and_exit_code(verdict, audit.ignore_list(security), strict=True)
    assert code == 0 and "(1 ignored, see SECURITY.md)" in text
    assert f"ignored CVE-2024-22195 in jinja2 3.1.2: {why}" in text


def test_the_shipped_ignore_list_parses():
    ignored = audit.ignore_list()
    assert all(audit._VULN_ID.match(vuln_id) for vuln_id in ignored)


@pytest.mark.parametrize("reason", [SKIPPED["skip_reason"]])
def test_local_version_labels_are_recognised(reason):
    match = audit._LOCAL_VERSION.search(reason)
    assert (match["name"], match["version"]) == ("torch", "2.13.0")
