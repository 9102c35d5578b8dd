"""
Running system commands (``losetup``, ``mkfs``, ``mount``): the one subprocess wrapper.

Commands run with stdin closed and their output captured. Each caller names
the exception it raises (:class:`~agent.backends.interface.BackendError`,
:class:`~agent.fs.interface.FilesystemError`), so messages read the same
everywhere: ``Cannot run X: ...`` when it cannot start, and ``X ... failed
with exit code N: <stderr>`` when it fails.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

Completed = subprocess.CompletedProcess


def run_command(argv: Sequence[str], error: type[Exception], hint: str = "") -> Completed[str]:
    """Run ``argv``; raise ``error`` only if it cannot start (``hint`` says what to check)."""
    try:
        return subprocess.run(
            list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
    except OSError as e:
        raise error(f"Cannot run {argv[0]}: {e}.{' ' + hint if hint else ''}") from e


def command_failed(argv: Sequence[str], done: Completed[str], error: type[Exception]) -> Exception:
    """The ``error`` saying that ``argv`` exited non-zero, with its stderr."""
    return error(
        f"{' '.join(argv)} failed with exit code {done.returncode}: {done.stderr.strip()}"
    )


def check_command(argv: Sequence[str], error: type[Exception], hint: str = "") -> str:
    """Run ``argv`` and return its stdout; raise ``error`` unless it exits 0."""
    done = run_command(argv, error, hint)
    if done.returncode != 0:
        raise command_failed(argv, done, error)
    return done.stdout
