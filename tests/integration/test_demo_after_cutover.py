"""`migrator demo --rollback` end to end: the three figures, the pooled connection, and the way back."""

from __future__ import annotations

from pathlib import Path

from migrator.demo import run_demo
from migrator.journal import Journal

REPO = Path(__file__).resolve().parents[2]


def test_demo_with_rollback_reports_the_figures_and_keeps_every_write(tmp_path: Path) -> None:
    text = (REPO / "configs" / "sandbox.toml").read_text()
    config = tmp_path / "sandbox.toml"
    config.write_text(text.replace('workdir = "../.migrator/demo"', f'workdir = "{tmp_path / "demo"}"'))
    report = run_demo(config, scale=1, rate=40.0, rollback=True)
    assert report.ok, report.render()
    rendered = report.render()
    for label in ("pause:", "DNS:", "tail:", "pool:", "rollback:", "back:"):
        assert f"  {label}" in rendered, rendered
    # The pooled connection went source -> target (ended by the migrator) -> source (ended by the rollback).
    assert [step.split(" ")[0] for step in report.pool["path"]] == ["source", "target", "source"]
    assert report.pool["ended"] == 2
    assert report.facts["connection_tail"]["ended_by_force"] >= 1
    assert report.facts["connection_tail"]["tail_seconds"] >= 3
    assert report.rollback["ok"] and report.rollback["on_target"] > 0
    assert report.workload["missing"] == 0 and report.workload["off"] == 0
    journal = Journal.open_readonly(tmp_path / "demo" / "journal.sqlite")
    try:
        assert journal.fact("rollback")["phase"] == "done"
    finally:
        journal.close()
