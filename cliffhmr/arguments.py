"""The argument parser of every `cliffhmr` command, here below them all: `cli` dispatches to the
commands and the commands parse their own arguments, so neither imports the other for it."""

from __future__ import annotations

import argparse

from .errors import CliffError


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its mistakes (a missing or misspelt argument, `--focal abc`) as the project's
    one line and exit code 2; argparse itself prints its usage too."""

    def error(self, message: str):
        raise CliffError(f"{self.prog}: {message} (see {self.prog} --help)")
