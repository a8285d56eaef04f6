"""Helpers shared by the benchmark scripts: where results go and how a command is recorded."""
from __future__ import annotations

import json
import shlex
import sys
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]).resolve().relative_to(REPO)) if Path(sys.argv[0]).resolve().is_relative_to(REPO) else sys.argv[0], *sys.argv[1:]])


def save(name: str, payload: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"command": command_line(), "date": datetime.now().isoformat(timespec="seconds"), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + f"\n\nCommand: `{payload['command']}` ({payload['date']})\n")
    print(f"wrote {RESULTS / name}.json and .md")
