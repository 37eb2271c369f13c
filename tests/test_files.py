"""fnn.files: atomic writes never leave a half-written file."""

import os

import pytest

from fnn.files import atomic_write, atomic_write_text


def test_text_and_binary_writes(tmp_path):
    atomic_write_text(tmp_path / "a" / "note.txt", "héllo")
    assert (tmp_path / "a" / "note.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write(tmp_path / "b.bin", lambda f: f.write(b"\x00\x01"))
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "data.bin"
    atomic_write(path, lambda f: f.write(b"old"))
    os.chmod(path, 0o600)

    def failing(f):
        f.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, failing)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and (os.stat(path).st_mode & 0o777) == 0o600
