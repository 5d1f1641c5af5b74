"""The ``polydl`` command line (installed as the ``polydl_cli`` package)."""
from __future__ import annotations

import signal
import sys

__all__ = ["run"]


def _terminate(signum, frame):
    sys.stderr.write("Error: terminated\n")
    raise SystemExit(128 + signum)


def run():
    """The ``polydl`` console script. Ctrl-C or SIGTERM while polydl and NumPy are still being
    imported, or outside a training loop, end in one ``Error:`` line (exit 130 or 143) instead of a
    traceback; inside a training loop they save the checkpoint first."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        from .main import main
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted\n")
        sys.exit(130)
    main()
