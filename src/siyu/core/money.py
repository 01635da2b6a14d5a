"""Money is integer fen (分); this is the one formatting helper."""

from __future__ import annotations


def format_fen(fen: int) -> str:
    """Format fen as yuan with two decimals: 123456 -> '¥1,234.56'."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"
