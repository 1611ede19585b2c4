"""Logging set-up and error reporting shared by the stage scripts."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

__all__ = ["UserError", "configure_logging", "errors_as_messages"]


class UserError(Exception):
    """An error the user fixes (a parameter, an input file, a corpus), not a bug: stages and commands report it as
    one ``error:`` line naming the key or file, with exit status 2 and no traceback."""


def configure_logging() -> None:
    """LiSER's own messages from ``LISER_LOG_LEVEL`` (INFO) up; other libraries' (ONNX export, the hub, DeepFace)
    from WARNING up, so their progress chatter does not bury ours."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("liser").setLevel(os.environ.get("LISER_LOG_LEVEL", "INFO"))


@contextlib.contextmanager
def errors_as_messages(*kinds: type[BaseException]) -> Iterator[None]:
    """End the stage with exit status 2 and only the error's message on stderr, for errors the user fixes (missing
    weights, a bad parameter) rather than bugs, whose traceback stays."""
    try:
        yield
    except kinds as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
