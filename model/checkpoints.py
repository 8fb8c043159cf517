"""Where checkpoints live and which one is the default: file paths only, no torch, so the dashboard and the CLI
can name versions and read model cards without loading the network."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"  # <version>/ folders, and DEFAULT naming the shipped one


class CheckpointError(RuntimeError):
    """The checkpoint directory is missing or incomplete."""


def default_checkpoint() -> Path:
    """The shipped checkpoint named in model/weights/DEFAULT."""
    pointer = WEIGHTS_DIR / "DEFAULT"
    if not pointer.is_file():
        raise CheckpointError(f"{pointer} is missing: no default checkpoint is shipped")
    return WEIGHTS_DIR / pointer.read_text().strip()
