"""The bench table's ratios: of medians, and paired run by run."""

from __future__ import annotations

from bench.report import Row, render


def test_the_paired_ratio_compares_each_run_with_ours_in_the_same_run() -> None:
    ours = Row("copy", "ours", True, 100.0, "MB/s", seconds=[20.0, 10.0, 15.0])
    # The machine ran at half speed for run 1: the peer is 2x ours in every run.
    peer = Row("copy", "peer", False, 100.0, "MB/s", seconds=[40.0, 20.0, 30.0])
    assert peer.paired_ratio(ours) == 2.0
    drifting = Row("copy", "peer", False, 100.0, "MB/s", seconds=[24.0, 30.0, 33.0])  # 1.2x, 3x, 2.2x
    assert drifting.paired_ratio(ours) == 2.2
    assert drifting.median is not None and ours.median is not None
    assert round(drifting.median / ours.median, 2) == 2.0  # the ratio of medians pairs different runs
    assert Row("copy", "peer", False, 1.0, "MB/s", seconds=[1.0]).paired_ratio(ours) is None  # runs differ


def test_the_table_shows_both_ratios_and_none_for_lag_or_skipped_rows() -> None:
    ours = Row("copy", "ours", True, 100.0, "MB/s", seconds=[20.0, 10.0, 15.0])
    peer = Row("copy", "peer", False, 100.0, "MB/s", seconds=[24.0, 30.0, 33.0])
    skipped = Row("copy", "absent", False, 100.0, "MB/s", skipped="not installed")
    lag = Row("lag", "ours lag", True, 1000.0, "lag", seconds=[0.01])
    lines = render([ours, peer, skipped, lag], "header").splitlines()
    peer_line = next(line for line in lines if line.startswith("copy     peer"))
    assert "2.00x" in peer_line and "2.20x" in peer_line
    assert "not installed" in next(line for line in lines if "absent" in line)
    lag_line = next(line for line in lines if "ours lag" in line)
    assert "x " not in lag_line.split("tx/s")[1]  # no ratio for a lag
