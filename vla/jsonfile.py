"""JSON files that mark a finished step (a stage's result, a resumable run's state): written
atomically, so a run killed mid-write leaves the previous file or none, never half of one."""

import json
from pathlib import Path


def write_json(path: Path, value: dict) -> None:
    """Write ``value`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict | None:
    """The file's content, or None when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
