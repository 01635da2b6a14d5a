"""Durable domain events: written to the store outbox with the change that causes them, consumed at
least once by idempotent handlers, each with its own position (see docs/architecture.md)."""
