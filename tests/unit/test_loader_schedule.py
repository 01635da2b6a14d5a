"""When the inbox loader re-runs One-ID (a full, id-stable re-clustering)."""

from __future__ import annotations

from siyu.ingest.loader import resolve_due


def test_one_id_never_takes_more_than_a_fifth_of_the_loader() -> None:
    assert resolve_due(now=105.0, last=100.0, last_seconds=0.5, every=5.0)  # small brand: every 5 s
    assert not resolve_due(now=104.9, last=100.0, last_seconds=0.5, every=5.0)
    # 85 s runs (1.8M source records): the next one only after 4 x 85 s of loading
    assert not resolve_due(now=100.0 + 339.0, last=100.0, last_seconds=85.0, every=5.0)
    assert resolve_due(now=100.0 + 340.0, last=100.0, last_seconds=85.0, every=5.0)
