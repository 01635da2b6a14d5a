"""The web console (运营控制台) at `/console`: server-rendered pages over the same services as the
CLI and the API, with users, roles and data scopes (docs/console.md)."""
