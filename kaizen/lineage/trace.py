"""Walk one record's lineage: back through its parents (features, predictions), the model versions
that produced them and the training runs (with data ranges) that made those models; forward to the
orders that cite it and the fills of those orders."""

from __future__ import annotations

from collections import defaultdict

from kaizen.lineage.records import Base, Fill, Order, Retrain


def trace(reader, rid: int) -> list[tuple[int, str, Base]] | None:
    """[(depth, role, record)] in display order, or None when `rid` is not in the log."""
    by_id: dict[int, Base] = {}
    children: dict[int, list[Base]] = defaultdict(list)  # parent id -> orders/fills citing it
    trained: dict[str, list[Retrain]] = defaultdict(list)  # model version -> retrain runs
    for rec in reader.records():
        by_id[rec.id] = rec
        if isinstance(rec, Order | Fill):
            for p in rec.parents:
                children[p].append(rec)
        elif isinstance(rec, Retrain):
            for m in rec.candidates:
                trained[m].append(rec)
    root = by_id.get(rid)
    if root is None:
        return None
    out: list[tuple[int, str, Base]] = [(0, _role(root), root)]
    seen = {rid}
    models_done: set[str] = set()

    def model_chain(rec: Base, depth: int) -> None:
        if not rec.model or rec.model in models_done:
            return
        models_done.add(rec.model)
        for run in trained.get(rec.model, []):
            out.append(
                (
                    depth,
                    f"trained by run {run.run_id} on data {_iso(run.data_start)} .. {_iso(run.data_end)}",
                    run,
                )
            )

    def back(rec: Base, depth: int) -> None:
        model_chain(rec, depth)
        for p in rec.parents:
            if p in seen:
                continue
            seen.add(p)
            parent = by_id.get(p)
            if parent is None:
                out.append((depth, f"parent {p} (not in this log)", _Missing(id=p, ts=0)))
                continue
            out.append((depth, f"<- {_role(parent)}", parent))
            back(parent, depth + 1)

    back(root, 1)

    def forward(rec_id: int, depth: int) -> None:
        for child in children.get(rec_id, []):
            if child.id in seen:
                continue
            seen.add(child.id)
            out.append((depth, f"-> {_role(child)}", child))
            forward(child.id, depth + 1)

    forward(rid, 1)
    return out


class _Missing(Base, tag="missing"):
    pass


def _role(rec: Base) -> str:
    tag = rec.__struct_config__.tag
    return f"{tag} (model {rec.model})" if rec.model else tag


def _iso(ns: int) -> str:
    from kaizen.lineage.cli import _iso as iso

    return iso(ns)
