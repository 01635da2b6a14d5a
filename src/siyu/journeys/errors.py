"""Journey errors: stable codes, messages that say what to fix."""

from __future__ import annotations

from siyu.core.errors import NotFoundError, SiyuError


class JourneyError(SiyuError):
    code = "invalid_journey"
    exit_code = 2


class UnknownJourneyError(NotFoundError):
    code = "unknown_journey"


class JourneyStateError(SiyuError):
    """The journey is in a state that does not allow this (paused, archived)."""

    code = "journey_state"
    exit_code = 1
