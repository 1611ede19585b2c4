"""How a stage script runs: parse its arguments, read the settings it uses, do its work.

A stage script defines ``parser`` (its paths), ``read_params(params, args)`` (what it reads of ``params.yaml``:
the sections it hands on whole and the values it reads, nothing else) and ``work(settings, args)``, then calls
:func:`run_stage`.  ``read_params`` is what tests/test_stage_params.py holds against the stage's ``params`` list in
``dvc.yaml``, under both profiles.  A user error (:class:`liser.logs.UserError`, a missing input file, a full disk
or a read-only output folder) ends the stage with one ``error:`` line and exit status 2; SIGTERM ends it like
Ctrl-C, through its clean-ups.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from liser.files import DISK_ERRORS
from liser.logs import UserError, configure_logging, errors_as_messages
from liser.params import Params, load_params
from liser.processes import exit_on_sigterm

__all__ = ["run_stage"]


def run_stage(
    parser: argparse.ArgumentParser,
    read_params: Callable[[Params, argparse.Namespace], Any],
    work: Callable[[Any, argparse.Namespace], object],
) -> None:
    args = parser.parse_args()
    configure_logging()
    exit_on_sigterm()
    try:
        with errors_as_messages(UserError, FileNotFoundError):
            work(read_params(load_params(), args), args)
    except OSError as error:  # written outside liser.files' helpers, which name the file themselves
        if error.errno not in DISK_ERRORS:
            raise
        print(f"error: {error.filename or 'an output'}: could not be written ({error.strerror})", file=sys.stderr)
        raise SystemExit(2) from None
