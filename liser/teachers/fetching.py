"""What fetching the teachers' published files shares: the errors a user acts on, the checksums a file is pinned by,
one file fetched from a URL, and the record (``fetched.json``) a stage leaves beside what it fetched, for the stages
that read the files to check against their params.

A file is pinned by its SHA-256, by its git blob id (SHA-1 of ``blob <size>\\0`` followed by the bytes: the id a git
repository gives the file, so a file published in a repository can be pinned offline from its tree listing), or by
both.  A file with no pin is fetched, its checksums logged so they can be pinned.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from liser.files import atomic_path
from liser.logs import UserError

__all__ = [
    "RECORD_FILE",
    "WeightsUnavailable",
    "ChecksumMismatch",
    "UnsafeWeights",
    "Pins",
    "sha256_of",
    "git_blob_of",
    "offline",
    "one_line",
    "checked",
    "fetch_url_file",
]

log = logging.getLogger(__name__)

RECORD_FILE = "fetched.json"  # what a stage fetched or made, and the params it did so with
_CHUNK = 1 << 20
_URL_TIMEOUT_S = 60.0


class WeightsUnavailable(UserError, RuntimeError):
    """Published weights a stage needs are neither on this machine nor reachable from it, or are not the ones its
    params name."""


class ChecksumMismatch(UserError, ValueError):
    """A weights file whose checksum is not the one in params."""


class UnsafeWeights(UserError, ValueError):
    """A pickle weights file holding objects that a safe load (``torch.load(weights_only=True)``) does not build."""


@dataclass(frozen=True)
class Pins:
    """The checksums params pin a file to (None: not pinned), and the params keys that hold them."""

    sha256: str | None
    git_blob: str | None
    key: str  # e.g. video_weights.mobilefacenet: the section holding `sha256` and `git_blob`


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_of(path: str | Path) -> str:
    """The id git gives the file's content: SHA-1 of ``blob <size>\\0`` and the bytes."""
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def offline() -> bool:
    """Whether the user asked for no network, the Hugging Face way (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def checked(path: Path, pins: Pins, sha256: str | None = None) -> dict[str, str]:
    """The file's SHA-256 (``sha256`` when already known) and git blob id, checked against ``pins``."""
    digests = {"sha256": sha256 or sha256_of(path), "git_blob": git_blob_of(path)}
    expected = {"sha256": pins.sha256, "git_blob": pins.git_blob}
    for kind, value in expected.items():
        if value is not None and digests[kind] != value.lower():
            raise ChecksumMismatch(
                f"{path}: {kind} is {digests[kind]}, params.yaml {pins.key}.{kind} says {value}. The file is damaged "
                f"or not the published one: delete it and run the stage again to fetch it, or, if the publisher "
                f"replaced the file on purpose, set {pins.key}.{kind} to the new value."
            )
    if pins.sha256 is None and pins.git_blob is None:
        log.warning(
            "%s: SHA-256 %s, not pinned; set %s.sha256: %s in params.yaml to pin it",
            path,
            digests["sha256"],
            pins.key,
            digests["sha256"],
        )
    return digests


def _download(url: str, out: Path, pins: Pins) -> dict[str, str]:
    """``url`` into ``out`` (atomically), checked against ``pins``."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=_URL_TIMEOUT_S) as response, atomic_path(out) as tmp:
        total = int(response.headers.get("Content-Length") or 0) or None
        with open(tmp, "wb") as handle, tqdm(total=total, unit="B", unit_scale=True, desc=out.name) as bar:
            while chunk := response.read(_CHUNK):
                handle.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        return checked(tmp, pins, sha256=digest.hexdigest())


def fetch_url_file(urls: list[str], pins: Pins, out: str | Path) -> dict:
    """The file at the first of ``urls`` (http or https) that serves it with the pinned checksums, as ``out``; a file
    already in ``out`` is checked and kept.  Returns what is recorded of it: its name and checksums (which URL served
    it, or that it was there already, is logged: the record is the same either way)."""
    out = Path(out)
    if out.is_file():
        log.info("%s already in place", out)
        return {"file": out.name, **checked(out, pins)}
    for url in urls:
        if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
            raise ValueError(f"{pins.key}: only http(s) URLs are fetched (got {url!r})")
    how = (
        f"On a machine with internet run:\n    curl -L -o {out.name} {urls[0]}\n"
        f"then copy {out.name} to {out} here, and run the stage again."
    )
    if offline():
        raise WeightsUnavailable(f"{out.name} is not on this machine and HF_HUB_OFFLINE is set.\n{how}")
    failures: list[str] = []
    mismatched = False
    for url in urls:
        try:
            digests = _download(url, out, pins)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            failures.append(f"{url} could not be fetched: {one_line(error)}")
        except ChecksumMismatch as error:
            failures.append(f"{url}: {error}")
            mismatched = True
        else:
            log.info("%s fetched from %s", out, url)
            return {"file": out.name, **digests}
    message = "\n".join(failures)
    raise ChecksumMismatch(message) if mismatched else WeightsUnavailable(f"{message}\n{how}")
