"""Where checkpoints live and which one is the default: file paths only, no torch, so the dashboard and the CLI
can name versions and read model cards without loading the network."""

from __future__ import annotations

import json
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"  # <version>/ folders, and DEFAULT naming the shipped one
NETWORK_FILES = ("config.json", "model.safetensors", "tokenizer.json")  # what rebuilding the network reads
CHECKPOINT_FILES = (*NETWORK_FILES, "card.json")  # a complete checkpoint: the network and its model card


class CheckpointError(RuntimeError):
    """The checkpoint directory is missing or incomplete."""


def default_checkpoint() -> Path:
    """The shipped checkpoint named in model/weights/DEFAULT."""
    pointer = WEIGHTS_DIR / "DEFAULT"
    if not pointer.is_file():
        raise CheckpointError(f"{pointer} is missing: no default checkpoint is shipped")
    return WEIGHTS_DIR / pointer.read_text().strip()


def default_version() -> str:
    """The version of the shipped checkpoint: the folder named in model/weights/DEFAULT."""
    return default_checkpoint().name


def active_version(configured: str | None) -> str:
    """The model version the readers show: the configured one (FINSENT_MODEL_VERSION), else the shipped default."""
    return configured or default_version()


def version_checkpoint(version: str) -> Path | None:
    """The checkpoint folder model/weights/<version> when it holds a network, else None (also for a version that
    is not a plain folder name: a version never names a path)."""
    if not version or version != Path(version).name or version.startswith("."):
        return None
    path = WEIGHTS_DIR / version
    return path if all((path / name).is_file() for name in NETWORK_FILES) else None


def read_card(path: Path) -> dict:
    """The model card (card.json) of a checkpoint directory; CheckpointError when it has none."""
    card = Path(path) / "card.json"
    if not card.is_file():
        raise CheckpointError(f"{path}: no card.json")
    return json.loads(card.read_text())
