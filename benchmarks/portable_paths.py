"""Rewrite the recorded results so that no file names a path of the machine that made it.

    python benchmarks/portable_paths.py            # rewrites benchmarks/results/ in place; prints what changed

The same mapping as every results writer applies (common.portable): the repository as ".", a folder
beside it as ../NAME (../shared/data, ../runs/...), a temporary output folder as OUT/NAME. Only paths
change, never a number; running it again changes nothing.
"""
from __future__ import annotations

from common import RESULTS, portable

TEXT = {".json", ".md", ".csv", ".txt", ".tsv", ".log"}


def main() -> None:
    changed = 0
    for path in sorted(RESULTS.rglob("*")):
        if path.is_file() and path.suffix in TEXT:
            text = path.read_text()
            if portable(text) != text:
                path.write_text(portable(text))
                changed += 1
                print(f"rewrote {path.relative_to(RESULTS.parent.parent)}")
    print(f"{changed} file(s) rewritten")


if __name__ == "__main__":
    main()
