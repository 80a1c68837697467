"""Reading the files a user names (boxes, keypoints, training configs): one clear line for every way they can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import CliffError


def read_text_file(path: str | Path, what: str) -> str:
    """The text of `path`, UTF-8 with or without a BOM; CliffError naming the file and `what` it
    should be ("boxes file") when it is missing, a folder, unreadable or not UTF-8."""
    p = Path(path)
    if p.is_dir():
        raise CliffError(f"{p}: is a folder, not a {what}")
    if not p.is_file():
        raise CliffError(f"{p}: no such {what}")
    try:
        return p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CliffError(f"{p}: {what} is not UTF-8 text") from None
    except OSError as exc:
        raise CliffError(f"{p}: cannot read {what} ({exc.strerror or exc})") from None


def read_json_file(path: str | Path, what: str) -> object:
    """The parsed contents of `path` (see `read_text_file`); CliffError also when it is not JSON
    or nested too deeply for the parser."""
    text = read_text_file(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliffError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise CliffError(f"{path}: {what} is nested too deeply to be boxes or keypoints") from None
