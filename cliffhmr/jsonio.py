"""Reading the JSON files a user names (boxes, keypoints): one clear line for every way they can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import CliffError


def read_json_file(path: str | Path, what: str) -> object:
    """The parsed contents of `path`, UTF-8 with or without a BOM; CliffError naming the file
    and `what` it should be ("boxes file") when it is missing, a folder, unreadable, not UTF-8,
    not JSON, or nested too deeply for the parser."""
    p = Path(path)
    if p.is_dir():
        raise CliffError(f"{p}: is a folder, not a {what}")
    if not p.is_file():
        raise CliffError(f"{p}: no such {what}")
    try:
        return json.loads(p.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise CliffError(f"{p}: {what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise CliffError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise CliffError(f"{p}: {what} is nested too deeply to be boxes or keypoints") from None
    except OSError as exc:
        raise CliffError(f"{p}: cannot read {what} ({exc.strerror or exc})") from None
