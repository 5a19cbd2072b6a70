"""The ``adnstudy`` command's entry point: signal handlers first, then the slow imports, then the app.

Installing the handlers before importing the command line (pandas, CVXPY ...)
means a Ctrl-C or SIGTERM during the imports ends with one line and exit 130 or
143, not a traceback.
"""

from __future__ import annotations

import sys

from adnstudy import interrupt


def main() -> None:
    interrupt.install()
    try:
        from adnstudy.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt as exc:  # outside a command (its own handler says more)
        sys.stderr.write(f"error: {interrupt.describe(exc)}\n")
        sys.stderr.flush()
        sys.exit(interrupt.exit_code(exc))


if __name__ == "__main__":  # pragma: no cover
    main()
