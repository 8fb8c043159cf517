"""Hostile commands: bad settings, files, configs and arguments given to the real `finsent` CLI (issue 17, D1, D6,
D11, D12, D16, D17 and the empty date range), each with the outcome it must have.

`error` cases must exit 1 with exactly one line on stderr, `error: ...` containing `message`, and no traceback;
`ok` cases must exit 0 with `stdout` in their output. Nothing a case passes may reach the terminal unescaped: no
ESC or other control character in any output. `{tmp}` in arguments, environment and files is the case's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CliCase:
    name: str
    args: tuple[str, ...]
    message: str = ""  # for errors: a piece of the one stderr line
    stdout: str = ""  # for ok cases: a piece of stdout
    ok: bool = False
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # written into {tmp} first


DB = "sqlite:///{tmp}/x.db"
RECEIVER = b'[[receiver]]\nname = "t"\nkind = "log"\n'

CASES = [
    # D1: the empty host is every interface, not loopback; without a password the dashboard must refuse it.
    CliCase("dashboard --host '' without a password", ("dashboard", "--host", "", "--database-url", DB),
            "password"),
    # D6: a batch delay of inf or 1e9 killed the scoring thread or hung the run.
    CliCase("FINSENT_BATCH_MAX_DELAY_S=inf", ("db", "upgrade", "--database-url", DB), "batch_max_delay_s",
            env={"FINSENT_BATCH_MAX_DELAY_S": "inf"}),
    CliCase("FINSENT_BATCH_MAX_DELAY_S=1e9", ("db", "upgrade", "--database-url", DB), "batch_max_delay_s",
            env={"FINSENT_BATCH_MAX_DELAY_S": "1e9"}),
    # D11: each of these printed a traceback of 26-74 lines.
    CliCase("FINSENT_BATCH_MAX_SIZE=abc", ("db", "upgrade", "--database-url", DB), "batch_max_size",
            env={"FINSENT_BATCH_MAX_SIZE": "abc"}),
    CliCase("backfill notes.txt", ("backfill", "{tmp}/notes.txt", "--database-url", DB), "unknown file type '.txt'",
            files={"notes.txt": b"just some notes\n"}),
    CliCase("backfill of a missing file", ("backfill", "{tmp}/absent.csv", "--database-url", DB), "no such file"),
    CliCase("run --sources naming a missing file",
            ("run", "--sources", "{tmp}/sources.toml", "--exit-when-done", "--database-url", DB),
            "missing.csv: No such file or directory",
            files={"sources.toml": b'[[source]]\nname = "f"\nkind = "file"\npath = "{tmp}/missing.csv"\n'}),
    CliCase("a rule window of 99999999999d", ("monitor", "--config", "{tmp}/m.toml", "--once", "--database-url", DB),
            "window: '99999999999d' is longer than the longest duration allowed",
            files={"m.toml": RECEIVER + b'[[rule]]\nname = "x"\ntype = "negative_burst"\nwindow = "99999999999d"\n'}),
    CliCase("model explain --file on a binary file", ("model", "explain", "--file", "{tmp}/binary.csv"),
            "not UTF-8 text", files={"binary.csv": bytes(range(128, 256)) * 4}),
    # D12: a secret written in the monitor file was a 4-line pydantic dump without the file name.
    CliCase("a secret value in the monitor file",
            ("monitor", "--config", "{tmp}/m.toml", "--once", "--database-url", DB), "m.toml",
            files={"m.toml": b'[[receiver]]\nname = "w"\nkind = "webhook"\nurl = "https://hooks.example/x"\n'
                                      b'secret = "s3cr3t-value-in-the-file"\n'}),
    # D13: nothing of the file can be read: one error for the file, exit 1.
    CliCase("backfill of a file without a title column", ("backfill", "{tmp}/other.csv", "--database-url", DB),
            "every row was rejected (1); the first: line 1: no title column",
            files={"other.csv": b"Date,Caption,Symbol\n2024-01-01,Apple beats,AAPL\n"}),
    CliCase("backfill where every time is refused", ("backfill", "{tmp}/times.csv", "--database-url", DB),
            "every row was rejected (2); the first: line 2: published_at: '12:00' has no year",
            files={"times.csv": b"headline,published_at\nA,12:00\nB,May 2024\n"}),
    CliCase("run --replay where every row is refused",
            ("run", "--replay", "{tmp}/bad.csv", "--exit-when-done", "--database-url", DB),
            "nothing stored: 2 unreadable rows and 0 rejected items",
            files={"bad.csv": b"headline,published_at\nA,12:00\nB,May 2024\n"}),
    # The last row of the table: an empty date range was accepted and the file marked done.
    CliCase("backfill --since after --until",
            ("backfill", "{tmp}/n.csv", "--since", "2021-01-01", "--until", "2020-01-01", "--database-url", DB),
            "is not before --until", files={"n.csv": b"headline,published_at\nA,2020-06-01\n"}),
    # D16: the feed server beyond loopback needs a token of 16+ characters.
    CliCase("feed serve on 0.0.0.0 without a token",
            ("feed", "serve", "--host", "0.0.0.0", "--port", "0", "--database-url", DB), "token"),
    # D17: an escape sequence in the text is shown escaped, never obeyed.
    CliCase("model explain with control characters", ("model", "explain", "Nokia\x01\x1b[31m plunges"),
            stdout="\\x01\\x1b[", ok=True),
    CliCase("an error message naming a file with an escape in its name",
            ("backfill", "{tmp}/\x1b[31mred.csv", "--database-url", DB), "no such file"),
    # Issue 18, point 6: the model version readers show is a folder name that exists here or scored something.
    CliCase("FINSENT_MODEL_VERSION naming a path", ("db", "upgrade", "--database-url", DB),
            "bad FINSENT_ setting: model_version", env={"FINSENT_MODEL_VERSION": "../weights"}),
    CliCase("FINSENT_MODEL_VERSION naming no checkpoint and no scores",
            ("alerts", "replay", "--config", "{tmp}/m.toml", "--since", "2020-01-01", "--until", "2020-01-02",
             "--database-url", DB),
            "FINSENT_MODEL_VERSION=no-such-model: no such model version",
            env={"FINSENT_MODEL_VERSION": "no-such-model"},
            files={"m.toml": b'[[rule]]\nname = "x"\ntype = "negative_burst"\nwindow = "1h"\n'}),
    CliCase("model compare --candidate without scores", ("model", "compare", "--candidate", "v2", "--database-url", DB),
            "--candidate v2: model version v2 has no scores in the database"),
    CliCase("model compare --candidate with an escape in its name",
            ("model", "compare", "--candidate", "\x1b[31mv2", "--database-url", DB), "has no scores in the database"),
    # Issue 18, distillation: a teacher or soft-label file that is not there.
    CliCase("model soft-labels of a folder without a checkpoint", ("model", "soft-labels", "{tmp}"), "no card.json"),
    CliCase("model train --soft-labels of a missing file",
            ("model", "train", "--soft-labels", "{tmp}/none.csv.gz", "--out-dir", "{tmp}"),
            "none.csv.gz: no such soft-label file"),
]  # fmt: skip
