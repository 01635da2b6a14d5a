"""The overview's CLV matrix heatmap (CLV 矩阵): the stored matrix (siyu.metrics.clv_matrix) as cells
[x = purchase × propagation tier, y = layer, average CLV in yuan, customers], in both languages."""

from __future__ import annotations

from siyu.console.pages.overview import clv_matrix_chart

MATRIX = {
    "purchase_tiers": ["none", "low", "mid", "high"],
    "propagation_tiers": ["none", "low", "high"],
    "cells": [
        {"layer": "basic", "purchase_tier": "none", "propagation_tier": "none", "customers": 40,
         "average_clv_fen": 0},
        {"layer": "repurchase", "purchase_tier": "high", "propagation_tier": "low", "customers": 3,
         "average_clv_fen": 123456},
        {"layer": "purchased", "purchase_tier": "low", "propagation_tier": "none", "customers": 0,
         "average_clv_fen": None},
    ],
}  # fmt: skip


def test_cells_place_each_layer_and_tier_pair() -> None:
    chart = clv_matrix_chart(MATRIX, 0)
    assert len(chart["x"]) == 12 and chart["x"][0] == "购买无 · 传播无"
    assert chart["y"] == ["基础私域用户", "已购会员", "复购会员"]  # layers with cells, in layer order
    high_low = chart["x"].index("购买高 · 传播低")
    # empty cells (0 customers) are left out; the rest: [x, y, ¥ average, customers]
    assert chart["cells"] == [[0, 0, 0.0, 40], [high_low, 2, 1234.56, 3]]
    assert chart["max"] == 1234.56
    english = clv_matrix_chart(MATRIX, 1)
    assert english["x"][high_low] == "purchase high · propagation low"


def test_no_matrix_gives_an_empty_chart() -> None:
    assert clv_matrix_chart({}, 1) == {"x": [], "y": [], "cells": [], "max": 0}
