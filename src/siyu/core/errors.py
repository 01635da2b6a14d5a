"""Domain errors: a stable code and a message that tells the user what to fix."""

from __future__ import annotations


class SiyuError(Exception):
    """Base of every error siyu reports to a user (CLI prints it without a traceback)."""

    code = "siyu_error"
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnreadableFileError(SiyuError):
    code = "unreadable_file"
    exit_code = 2


class UnknownEntityError(SiyuError):
    code = "unknown_entity"
    exit_code = 2


class NotFoundError(SiyuError):
    code = "not_found"
    exit_code = 3
