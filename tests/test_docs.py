"""Every code block in README.md and docs/*.md runs or parses, and every link points at a file.

How each fenced block is checked, by its language tag:

- ```python: executed, block after block in the order of the file, all blocks of a file sharing one
  namespace (like the cells of one notebook), in a fresh temporary working directory (so `runs/...`
  folders land there). The namespace is a module registered in sys.modules while the file runs, so a
  class defined in a block can be imported again by its path module:Class, as a notebook's can. Real
  MNIST / Fashion-MNIST are reachable through $VAELAB_DATA when tests/conftest.py's REAL_DATA has them,
  but the docs use the embedded `mnist-5k` and small iteration counts, so they run offline in about
  a minute. A traceback points at the Markdown file and line.
- ```bash, ```sh, ```shell, ```console and untagged ```: every command is split at `&&`, `||`, `;`
  and `|` (trailing `# comments` dropped, `\\` continuations joined). A command that runs vaelab
  (`vaelab ...`, `.venv/bin/vaelab ...`, `python -m vaelab ...`, `torchrun ... -m vaelab ...`) must
  parse with `vaelab.cli.build_parser()`; placeholders such as runs/<run> are fine, and the value of
  `--data-dir` is replaced by an existing folder, since the parser checks that the folder exists on
  this machine. Any other command (bash scripts/setup.sh, python benchmarks/speed.py ...) must name
  only repository files that exist.
- any other tag (text, json, ...): not code, not checked.

A block opts out only with the line `<!-- docs-test: skip -->` directly above its opening fence
(meant for things this machine cannot check; no block uses it at present).

Relative Markdown links and images, `[text](path)`, outside code must point at files or folders
that exist in the repository.
"""
from __future__ import annotations

import re
import shlex
import sys
import types
from pathlib import Path

import pytest

from conftest import REAL_DATA

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_MARKER = "<!-- docs-test: skip -->"
SHELL_TAGS = {"", "bash", "sh", "shell", "console"}
# Top-level folders of the repository: a word starting with one of them names a repository file.
REPO_DIRS = ("benchmarks", "docs", "examples", "scripts", "src", "tests")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<tag>[\w+-]*)[^\n]*$")


def code_blocks(path: Path) -> list[dict]:
    """The fenced code blocks of a Markdown file: tag, code (dedented), first code line, skipped?"""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m.group("indent"), m.group("fence")
        skipped = i > 0 and lines[i - 1].strip() == SKIP_MARKER
        start, j = i + 1, i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            j += 1
        assert j < len(lines), f"{path.name}:{i + 1}: code block never closed"
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[start:j]]
        blocks.append({"tag": m.group("tag").lower(), "code": "\n".join(body) + "\n", "line": start + 1,
                       "skipped": skipped})
        i = j + 1
    return blocks


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_the_docs_exist_and_hold_checked_blocks():
    """Guard against a test that silently checks nothing: the pages exist and have code in them."""
    names = {p.name for p in DOC_FILES}
    for page in ("models.md", "cli.md", "python-api.md", "data.md", "runtime.md", "results.md", "layout.md",
                 "beta.md"):
        assert page in names, page
    python = [b for p in DOC_FILES for b in code_blocks(p) if b["tag"] == "python"]
    shell = [b for p in DOC_FILES for b in code_blocks(p) if b["tag"] in SHELL_TAGS]
    assert len(python) >= 10 and len(shell) >= 10
    assert any(b["tag"] == "python" for b in code_blocks(ROOT / "README.md"))
    assert not [b for p in DOC_FILES for b in code_blocks(p) if b["skipped"]], "a block opted out: say why here"


# -- python blocks ----------------------------------------------------------------------------------
PYTHON_FILES = [p for p in DOC_FILES if any(b["tag"] == "python" for b in code_blocks(p))]


@pytest.mark.parametrize("path", PYTHON_FILES, ids=_ids(PYTHON_FILES))
def test_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if REAL_DATA.is_dir():
        monkeypatch.setenv("VAELAB_DATA", str(REAL_DATA))
    name = "vaelab_docs_" + re.sub(r"\W", "_", path.stem)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        for block in code_blocks(path):
            if block["tag"] != "python" or block["skipped"]:
                continue
            # padded so that a traceback names the Markdown file and the line in it
            code = compile("\n" * (block["line"] - 1) + block["code"], str(path), "exec")
            exec(code, module.__dict__)
    finally:
        del sys.modules[name]


# -- shell blocks -----------------------------------------------------------------------------------
def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block as argument lists (comments dropped, continuations joined)."""
    text = re.sub(r"\\\n", " ", code)
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for w in words:
            if w in ("&&", "||", ";", "|"):
                commands.append(current)
                current = []
            else:
                current.append(w)
        commands.append(current)
    return [c for c in commands if c]


def vaelab_argv(words: list[str]) -> list[str] | None:
    """The vaelab arguments of a command that runs vaelab, or None for any other command."""
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):   # VAR=value prefixes
        words = words[1:]
    if not words:
        return None
    if Path(words[0]).name == "vaelab":
        return words[1:]
    if Path(words[0]).name in ("python", "python3", "torchrun"):
        for i in range(1, len(words) - 1):
            if words[i] == "-m" and words[i + 1] == "vaelab":
                return words[i + 2:]
    return None


def repo_paths(words: list[str]) -> list[str]:
    """The words of a command that name repository files (scripts/setup.sh, benchmarks/mnist.py)."""
    out = []
    for w in words:
        w = w.split("=", 1)[1] if w.startswith("-") and "=" in w else w
        if w.split("/", 1)[0] in REPO_DIRS and "/" in w:
            out.append(w)
        elif re.fullmatch(r"[\w.-]+\.(py|sh|ipynb)", w):
            out.append(w)
    return out


def parse_vaelab(argv: list[str], existing_dir: Path, capsys) -> str | None:
    """None if vaelab's parser accepts argv, else its error message."""
    from vaelab.cli import build_parser

    argv = list(argv)
    for i, w in enumerate(argv):
        if w == "--data-dir" and i + 1 < len(argv):
            argv[i + 1] = str(existing_dir)
        elif w.startswith("--data-dir="):
            argv[i] = f"--data-dir={existing_dir}"
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code not in (0, None):   # --help and --version exit 0
            return capsys.readouterr().err.strip() or f"exit {e.code}"
    return None


SHELL_FILES = [p for p in DOC_FILES if any(b["tag"] in SHELL_TAGS for b in code_blocks(p))]


@pytest.mark.parametrize("path", SHELL_FILES, ids=_ids(SHELL_FILES))
def test_shell_commands_parse_and_name_existing_files(path, tmp_path, capsys):
    problems, n_vaelab = [], 0
    for block in code_blocks(path):
        if block["tag"] not in SHELL_TAGS or block["skipped"]:
            continue
        for words in shell_commands(block["code"]):
            where = f"{path.name} (block at line {block['line']}): {shlex.join(words)}"
            argv = vaelab_argv(words)
            if argv is not None:
                n_vaelab += 1
                error = parse_vaelab(argv, tmp_path, capsys)
                if error:
                    problems.append(f"{where}\n    {error}")
            for p in repo_paths(words if argv is None else words[:len(words) - len(argv)]):
                if not (ROOT / p).exists():
                    problems.append(f"{where}\n    {p}: no such file in the repository")
    assert not problems, "\n".join(problems)


# -- links ------------------------------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^([ \t]*)(```+|~~~+).*?^\1\2[ \t]*$", "", text, flags=re.S | re.M)   # fenced code
    text = re.sub(r"`[^`\n]*`", "", text)                                               # inline code
    links = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue   # http:, mailto:, anchors within the page
        links.append(target.split("#", 1)[0])
    return links


@pytest.mark.parametrize("path", DOC_FILES, ids=_ids(DOC_FILES))
def test_links_point_at_files(path):
    missing = [t for t in relative_links(path) if not (path.parent / t).exists()]
    assert not missing, f"{path.name} links to files that do not exist: {missing}"
    for t in relative_links(path):
        assert (path.parent / t).resolve().is_relative_to(ROOT), f"{path.name}: {t} points outside the repository"


# -- the checker itself -----------------------------------------------------------------------------
def test_the_checker_reads_blocks_commands_and_links(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("Intro [a](README.md) `[b](nowhere.md)`\n\n"
                    "```python\nx = 1\n```\n\n"
                    "* item\n\n  ```bash\n  vaelab datasets   # list them\n  ```\n\n"
                    f"{SKIP_MARKER}\n```\nvaelab nonsense\n```\n\n"
                    "```text\nnot code [c](gone.md)\n```\n", encoding="utf-8")
    blocks = code_blocks(page)
    assert [(b["tag"], b["line"], b["skipped"]) for b in blocks] == [("python", 4, False), ("bash", 10, False),
                                                                    ("", 15, True), ("text", 19, False)]
    assert blocks[1]["code"] == "vaelab datasets   # list them\n"
    assert relative_links(page) == ["README.md"]
    assert shell_commands("bash scripts/setup.sh && .venv/bin/vaelab train vae --iters 5000  # comment\n") == [
        ["bash", "scripts/setup.sh"], [".venv/bin/vaelab", "train", "vae", "--iters", "5000"]]
    assert vaelab_argv(["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "vaelab", "train", "vae"]) == [
        "train", "vae"]
    assert vaelab_argv(["OMP_NUM_THREADS=1", ".venv/bin/vaelab", "datasets"]) == ["datasets"]
    assert vaelab_argv(["bash", "scripts/setup.sh"]) is None
    assert repo_paths(["python", "benchmarks/speed.py", "--out", "runs/x", "../shared/data"]) == ["benchmarks/speed.py"]
    assert parse_vaelab(["train", "vae", "--iters", "10", "--data-dir", "nowhere/at/all"], tmp_path, capsys) is None
    assert "invalid choice" in parse_vaelab(["train", "nomodel"], tmp_path, capsys)
    assert "--iters" in parse_vaelab(["train", "vae", "--iters", "0"], tmp_path, capsys)


def test_recorded_results_name_no_path_of_the_machine_that_made_them():
    """Every recorded command and run folder is written relative to the repository (benchmarks/common.py's
    portable(): ../shared/data, ../runs/..., OUT/...), so that it runs as written elsewhere."""
    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    machine = re.compile(r"(?<![\w.~$])/(work|tmp|root|home|Users|mnt|scratch|private|var/folders)/")
    found = [f"{p.relative_to(results)}: {m.group(0)}" for p in sorted(results.rglob("*"))
             if p.is_file() and p.suffix in (".json", ".md", ".csv", ".txt")
             for m in [machine.search(p.read_text(errors="replace"))] if m]
    assert not found, found


def test_portable_writes_machine_paths_relative_to_the_repository():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from common import REPO, portable

    text = f"--data-dir {REPO.parent}/shared/data --out {REPO}/runs/x --run {REPO.parent}/runs/r /tmp/b-cae {REPO}"
    assert portable(text) == "--data-dir ../shared/data --out runs/x --run ../runs/r OUT/b-cae ."
    assert portable(portable(text)) == portable(text)
