"""The wrapper around every procedure: it records the procedure's exit code in the job's directory, so
that an agent restarted after a crash learns the real outcome of a procedure that outlived it.

The agent starts this file as a program of its own (`python -I wrapper.py PROCEDURE RUN_DIR`), in a
session of its own, with the job's output file as stdout/stderr and a pipe as stdin. It imports only the
standard library: an upgrade of the agent's package while a procedure runs cannot break it. In order:

1. It waits for the line `run` on stdin. The agent sends it once it has recorded the wrapper's pid in its
   journal; if the agent dies before that, the pipe closes and the procedure never starts.
2. It creates `started` in RUN_DIR, then runs the procedure through the platform shell (stdin: the null
   device; output: inherited, i.e. the output file).
3. It writes the exit code to `exit-code` in RUN_DIR (temporary file + rename: a reader sees no file or
   the whole code) and exits with that code. A procedure killed by signal N has the code -N, as Python's
   subprocess reports it (the wrapper's own exit status is then 128 + N, as a shell's would be).

SIGTERM, SIGINT and SIGHUP sent to the whole process group reach the procedure and end it, as before,
but not the wrapper, which records how the procedure ended. SIGKILL ends the wrapper too: then there is
no exit code, and the agent reports that it cannot know the result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

GO = "run"
"""The line on stdin that lets the procedure start."""
STARTED_FILE = "started"
EXIT_CODE_FILE = "exit-code"
OUTPUT_FILE = "output.log"
NEVER_STARTED = 125
"""The wrapper's status when the agent never said `run` (the agent died first)."""
SETUP_FAILED = 126
"""The wrapper's status when it could not prepare the run (the agent reports "could not be executed")."""
_SURVIVED_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")


def shell_command(procedure: str) -> list[str]:
    """The platform shell for a procedure: `cmd /c` on Windows, `/bin/sh -c` elsewhere."""
    if sys.platform == "win32":
        return ["cmd", "/c", procedure]
    return ["/bin/sh", "-c", procedure]


def write_exit_code(run_dir: Path, code: int) -> None:
    """Write `code` to RUN_DIR/exit-code in one step (temporary file, fsync, rename)."""
    target = run_dir / EXIT_CODE_FILE
    temporary = run_dir / f".{EXIT_CODE_FILE}.{os.getpid()}"
    with temporary.open("w", encoding="ascii") as handle:
        handle.write(f"{code}\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)


def _ignore(_signum: int, _frame: object) -> None:
    """A handler, not SIG_IGN: an ignored signal would stay ignored in the procedure after exec."""


def main(argv: list[str]) -> int:
    """Run the procedure argv[1] with the run directory argv[2]; returns the wrapper's exit status."""
    if len(argv) != 3:
        print("usage: wrapper.py PROCEDURE RUN_DIR", file=sys.stderr)
        return SETUP_FAILED
    procedure, run_dir = argv[1], Path(argv[2])
    for name in _SURVIVED_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _ignore)
    if sys.stdin.readline().strip() != GO:
        return NEVER_STARTED
    sys.stdin.close()
    try:
        (run_dir / STARTED_FILE).touch()
        # The output file passed on explicitly: Windows hands a child the parent's file handles only so.
        code = subprocess.call(
            shell_command(procedure), stdin=subprocess.DEVNULL, stdout=sys.stdout, stderr=sys.stderr
        )
    except OSError as exc:
        print(f"oco agent: cannot start {procedure!r}: {exc}", file=sys.stderr, flush=True)
        return SETUP_FAILED
    try:
        write_exit_code(run_dir, code)
    except OSError as exc:  # the agent that started us still learns the code from our exit status
        print(f"oco agent: cannot record the exit code {code}: {exc}", file=sys.stderr, flush=True)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
