"""One-ID on the demo brand against the generator's ground truth, and id stability over imports."""

from __future__ import annotations

import itertools
from pathlib import Path

import networkx as nx
import pyarrow.csv as pacsv
import pytest

from siyu.bootstrap import App
from siyu.demo.generate import generate
from siyu.identity.normalise import load_blocklist, normalise_identifier
from siyu.identity.service import MAP_TABLE, run_resolve
from siyu.ingest.importer import import_path
from siyu.ingest.schema import IDENTIFIER_TYPES

STRONG = [t for t, s in IDENTIFIER_TYPES.items() if s == "strong"]


def _pairs(groups: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for members in groups.values() for p in itertools.combinations(members, 2)}  # type: ignore[misc]


def _linkable_truth(data: Path) -> dict[str, list[str]]:
    """Ground truth restricted to what can be known: records of one person joined by that person's
    own strong identifiers (placeholders excluded). Built independently of siyu's resolver."""
    truth = pacsv.read_csv(data / "truth.csv", convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    person = {
        f"{s}|{c}": p
        for s, c, p in zip(
            truth["source"].to_pylist(),
            truth["source_customer_id"].to_pylist(),
            truth["person_id"].to_pylist(),
            strict=True,
        )
    }
    blocked = load_blocklist()
    graph = nx.Graph()
    graph.add_nodes_from(person)
    text = pacsv.ConvertOptions(strings_can_be_null=True, column_types={t: "string" for t in STRONG})
    customers = pacsv.read_csv(data / "customers.csv", convert_options=text).to_pylist()
    identities = pacsv.read_csv(data / "identities.csv", convert_options=text).to_pylist()
    members = pacsv.read_csv(data / "memberships.csv", convert_options=text).to_pylist()
    rows = [(r, t, r.get(t)) for r in customers for t in STRONG]
    rows += [(r, r["id_type"], r["id_value"]) for r in identities]
    rows += [(r, "member_no", r["member_no"]) for r in members]
    holders: dict[tuple[str, str], set[str]] = {}
    edges = []
    for record, id_type, raw in rows:
        if not raw or IDENTIFIER_TYPES.get(id_type) != "strong":
            continue
        norm = normalise_identifier(id_type, str(raw))
        if norm is None or norm in blocked or (norm[0], "*") in blocked:
            continue
        node = f"{record['source']}|{record['source_customer_id']}"
        holders.setdefault(norm, set()).add(person[node])
        edges.append((node, norm))
    for node, norm in edges:
        # Only a person's own identifiers: a value on several persons is no evidence for linking.
        if len(holders[norm]) == 1:
            graph.add_edge(node, ("id", *norm))
    groups: dict[str, list[str]] = {}
    for component in nx.connected_components(graph):
        records = sorted(n for n in component if isinstance(n, str))
        groups[records[0]] = records
    return groups


@pytest.mark.slow
def test_one_id_precision_and_recall_on_demo(sqlite_app: App, tmp_path: Path) -> None:
    data = tmp_path / "demo"
    generate(data, customers=20_000, seed=3)
    import_path(sqlite_app, data)
    outcome = run_resolve(sqlite_app)
    idmap = sqlite_app.engine.to_arrow(sqlite_app.engine.table(MAP_TABLE)).to_pylist()
    predicted: dict[str, list[str]] = {}
    for row in idmap:
        predicted.setdefault(row["customer_id"], []).append(f"{row['source']}|{row['source_customer_id']}")
    truth = pacsv.read_csv(data / "truth.csv").to_pylist()
    person = {f"{r['source']}|{r['source_customer_id']}": str(r["person_id"]) for r in truth}

    predicted_pairs = _pairs(predicted)
    true_same = {p for p in predicted_pairs if person[p[0]] == person[p[1]]}
    precision = len(true_same) / len(predicted_pairs)
    linkable = _pairs(_linkable_truth(data))
    recall = len(linkable & predicted_pairs) / len(linkable)
    assert len(predicted_pairs) > 5_000 and len(linkable) > 5_000  # the test measures something real
    assert precision >= 0.999, precision
    assert recall >= 0.99, recall
    assert outcome.junk_identifiers, "placeholders and shared junk values must be reported"
    assert outcome.source_customers == len(truth)
