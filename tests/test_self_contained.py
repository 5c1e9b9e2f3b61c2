"""The clone tests anywhere: every test that reads a recording passes from a copy of the
repository in an empty directory, with no ``../shared`` (or anything else) beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Heavy browser runs read recordings through the same loader; they are not repeated here.
NOT_REPEATED = ("tests/browser/", "tests/test_self_contained.py")


def tracked_files() -> list[str]:
    """What a clone has: the files git tracks, plus new ones it does not ignore."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return [name for name in listing.stdout.decode().split("\0") if name]


@pytest.mark.timeout(400)  # it runs every recording-based test file again, in a child
def test_recording_based_tests_pass_from_a_lone_copy(tmp_path: Path) -> None:
    clone = tmp_path / "lonely" / "realtime-bridge"
    for name in tracked_files():
        source = REPO / name
        if source.is_file():
            target = clone / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert not (clone.parent.parent / "shared").exists()
    assert sorted(p.name for p in clone.parent.iterdir()) == ["realtime-bridge"]
    users = sorted(
        str(path.relative_to(clone))
        for path in (clone / "tests").rglob("test_*.py")
        if "read_wav" in path.read_text()
        and not str(path.relative_to(clone)).startswith(NOT_REPEATED)
    )
    assert "tests/test_turns_e2e.py" in users  # the search finds the recording users
    env = {k: v for k, v in os.environ.items() if k != "RECORDINGS_FIXTURES_ONLY"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *users],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
