"""Text columns of the demo files: numbers as text, prefixed zero-padded ids, local timestamps."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def as_text(numbers: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(numbers), pa.string())


def prefixed(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(as_text(numbers), width, "0"), "")


def local_ts(seconds: np.ndarray, naive: np.ndarray | None = None) -> pa.Array:
    """Epoch seconds of Shanghai wall-clock time -> ISO text with +08:00 (or naive where `naive`)."""
    ts = pa.array(seconds.astype("datetime64[s]"))
    with_offset = pc.strftime(ts, format="%Y-%m-%dT%H:%M:%S+08:00")
    if naive is None:
        return with_offset
    return pc.if_else(pa.array(naive), pc.strftime(ts, format="%Y-%m-%d %H:%M:%S"), with_offset)
