"""Errors that the command line turns into clear messages and exit statuses (never tracebacks)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration: the file, the field path and what to fix."""

    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "path": self.path, "message": self.message}


class FleetformError(Exception):
    """An error with a message meant for the operator; ``exit_code`` follows DESIGN section 5."""

    exit_code = 1


class UsageError(FleetformError):
    exit_code = 2


class ConfigurationError(FleetformError):
    """All configuration problems found, reported together (exit status 2)."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
