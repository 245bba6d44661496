"""User-facing errors: each problem names where it is and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, located as precisely as we can."""

    file: str
    where: str  # "line 12", "rubric.good[1].min", "" when the whole file is at fault
    message: str

    def __str__(self) -> str:
        loc = f"{self.file}:{self.where}" if self.where else self.file
        return f"{loc}: {self.message}"


class UserError(Exception):
    """A mistake in the user's input. The CLI prints the problems and exits with code 2."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem("", "", problems)]
        self.problems = problems
        super().__init__("\n".join(str(p).lstrip(": ") for p in problems))

    def lines(self) -> list[str]:
        """One line per problem: a message quoting a library's multi-line text is joined up."""
        texts = [str(p) if p.file else p.message for p in self.problems]
        return [" ".join(part.strip() for part in t.splitlines() if part.strip()) for t in texts]
