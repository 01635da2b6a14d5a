"""Local stand-ins for third-party services that speak their documented wire formats (tests, demo)."""
