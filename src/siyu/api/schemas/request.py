"""The base of every JSON request body the API defines (OWASP API3 mass assignment): a field the
caller may not set — `brand`, `id`, `created_at`, a typo — is refused with 422, never silently
ignored or bound. The brand always comes from the key; ids and times from the server."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
