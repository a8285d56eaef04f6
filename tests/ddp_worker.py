"""A torchrun worker for tests/test_distributed.py: `python -m vaelab ARGS`, watched.

    torchrun --nproc_per_node 2 tests/ddp_worker.py RECORD_DIR WATCHED_DIR train ae ...

Each rank writes RECORD_DIR/rank-R.pid when it starts (so a test can kill it) and, when
`vaelab` returns, RECORD_DIR/rank-R.json: every file-system change this process made under
WATCHED_DIR (opened for writing, created, renamed, removed, copied), seen by a Python audit hook.
"""
import json
import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CHANGES = {"os.mkdir": (0,), "os.rename": (0, 1), "os.replace": (0, 1), "os.remove": (0,), "os.rmdir": (0,),
           "os.truncate": (0,), "shutil.copyfile": (1,), "shutil.move": (0, 1), "os.symlink": (1,), "os.link": (1,)}


def main() -> int:
    record, watched, argv = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3:]
    rank = os.environ.get("RANK", "0")
    writes = []

    def inside(path) -> bool:
        if isinstance(path, int) or path is None:
            return False
        path = os.path.realpath(os.fsdecode(os.fspath(path)))
        return path == watched or path.startswith(watched + os.sep)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(flags, int) and flags & WRITE_FLAGS) or (isinstance(mode, str) and set(mode) & set("wax+"))
            paths = [path] if writing else []
        else:
            paths = [args[i] for i in CHANGES.get(event, ())]
        for path in paths:
            if inside(path):
                writes.append(f"{event} {os.fsdecode(os.fspath(path))}")

    with open(os.path.join(record, f"rank-{rank}.pid"), "w") as f:
        f.write(str(os.getpid()))
    sys.addaudithook(hook)
    from vaelab.cli import main as vaelab
    try:
        return vaelab(argv)
    finally:
        with open(os.path.join(record, f"rank-{rank}.json"), "w") as f:
            json.dump(list(writes), f)


if __name__ == "__main__":
    sys.exit(main())
