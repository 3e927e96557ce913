"""The seam the loop's traceability rests on: a promotion's PointerMove records name the gate's
ShadowComparison as parent, which names the Retrain record, and the trace walks from the move to
the comparison, the training run and its data range."""

from __future__ import annotations

import msgspec
import numpy as np

from kaizen.config import LineageConfig
from kaizen.lineage.ids import new_id
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import PointerMove, Retrain, ShadowComparison
from kaizen.lineage.trace import trace
from kaizen.lineage.writer import LineageWriter
from kaizen.loop.gate import PROMOTE, ValidationGate, comparison_record
from kaizen.models.registry import FLAT, ModelRegistry
from tests.loop.returns import scenario


def test_promotion_traces_to_comparison_and_training_run(tmp_path):
    with LineageWriter(tmp_path / "log", LineageConfig(fsync="never")) as w:
        reg = ModelRegistry(tmp_path / "reg", lineage=w)
        run = Retrain(
            id=new_id(), ts=1, run_id="nightly-7", role="signal", data_start=10**18, data_end=2 * 10**18
        )
        v = reg.register("signal", {"model.json": b"{}"}, run_id=run.run_id, retrain_id=run.id).version
        # the run's id is in the version's content, the version in the run's candidates
        w.append(msgspec.structs.replace(run, candidates=[v]))
        reg.add_shadow("signal", v, reason="nightly", parents=[run.id])
        champ, cand = scenario(np.random.default_rng(8101), 1000, 1, edge=0.5, cost=0.1, horizon=4)
        result = ValidationGate().evaluate(
            champ[:, 0], cand[:, 0], n_trials=3, role="signal", champion=FLAT, candidate=v
        )
        assert result.decision == PROMOTE
        cmp = comparison_record(result, ts=2, parents=[run.id])
        w.append(cmp)
        moves = reg.promote("signal", v, reason=result.reason, ts=3, parents=[cmp.id])
    reader = LineageReader(tmp_path / "log")
    champion_move = next(m for m in moves if m.pointer == "champion")
    lines = trace(reader, champion_move.id)
    kinds = [type(rec) for _, _, rec in lines]
    assert kinds[0] is PointerMove and ShadowComparison in kinds and Retrain in kinds
    assert any("trained by run nightly-7" in label for _, label, _ in lines)
