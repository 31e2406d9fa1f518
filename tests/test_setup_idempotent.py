"""Re-running the install on a set-up checkout changes nothing."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _freeze() -> str:
    return subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.env
def test_second_setup_run_is_a_no_op():
    before = _freeze()
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "environment up to date" in out.stdout
    assert _freeze() == before
