"""Logging set-up shared by the stage scripts."""

from __future__ import annotations

import logging
import os

__all__ = ["configure_logging"]


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("LISER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
