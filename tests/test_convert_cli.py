"""``vla data convert`` on the schema-true fixtures, then ``vla data check`` on the result."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from log_fixtures_nuscenes import write_nuscenes
from log_fixtures_physicalai_av import write_physicalai_av


def _vla(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vla.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("fmt", ["nuscenes", "physicalai-av"])
def test_converted_logs_pass_the_data_check_saying_what_it_skipped(fmt, tmp_path):
    root, out = tmp_path / "logs", tmp_path / "converted"
    if fmt == "nuscenes":
        write_nuscenes(root)
    else:
        write_physicalai_av(root)
    done = _vla("data", "convert", fmt, "--root", str(root), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "samples from" in done.stdout and "left out, by reason" in done.stdout
    checked = _vla("data", "check", str(out), "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] and report["problems"] == []
    assert report["source"] == fmt.replace("-", "_")
    assert report["label_derived_agreement"] is None  # derived from the future: not a check
    assert "drivable area" in report["skipped_checks"]
    assert set(report["prior_compatible_lon"]) == {"all", "logs"}
    assert report["skipped_samples"]  # the fixtures are built to leave some out
    # the human-readable check says the same
    table = _vla("data", "check", str(out))
    assert table.returncode == 0 and "skipped:" in table.stdout


def test_a_bad_log_folder_is_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "converted"
    done = _vla("data", "convert", "nuscenes", "--root", str(tmp_path / "nowhere"),
                "--out", str(out))
    assert done.returncode != 0
    assert done.stderr.strip().startswith("vla data convert nuscenes:")
    assert "nowhere" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() and not any(p.name.startswith(".converted") for p in tmp_path.iterdir())
