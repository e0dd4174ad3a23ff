"""The bench's table: medians of the runs, throughput, ratio against ours, peak RSS."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Row:
    section: str  # "copy" | "apply" | "lag" | "verify"
    method: str
    ours: bool
    unit_amount: float  # MB for copy, transactions for apply, rows for verify
    unit: str  # "MB/s", "tx/s", "rows/s"; "lag": seconds are lag samples' medians, unit_amount the tx/s
    seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    tools_rss_mb: list[float] = field(default_factory=list)
    note: str = ""
    skipped: str = ""  # why it did not run (tool not installed ...)

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


def render(rows: list[Row], header: str) -> str:
    lines = [header, ""]
    cols = (
        f"{'section':8s} {'method':44s} {'median s':>9s} {'runs':>4s} {'throughput':>14s} {'vs ours':>8s}"
        f" {'peak RSS':>16s}  note"
    )
    lines += [cols, "-" * len(cols)]
    ours_by_section: dict[str, float] = {}
    for r in rows:  # the first "ours" row of a section is what the others compare with
        if r.ours and r.median and r.section not in ours_by_section:
            ours_by_section[r.section] = r.median
    for row in rows:
        if row.median is None:
            lines.append(f"{row.section:8s} {row.method:44s} {'-':>9s} {0:>4d} {'-':>14s} {'-':>8s} {'-':>16s}  {row.skipped}")
            continue
        rate = row.unit_amount / row.median if row.median > 0 else 0.0
        ours = ours_by_section.get(row.section)
        ratio = f"{row.median / ours:.2f}x" if ours else "-"
        if row.unit == "lag":  # the median is a lag, not a duration of work: no throughput, no ratio
            rate, ratio = row.unit_amount, "-"
        rss = "-"
        if row.rss_mb:
            rss = f"{max(row.rss_mb):.0f} MB"
            if row.tools_rss_mb and max(row.tools_rss_mb) > 0:
                rss += f" ({max(row.tools_rss_mb):.0f})"
        lines.append(
            f"{row.section:8s} {row.method:44s} {row.median:9.2f} {len(row.seconds):4d} "
            f"{rate:9.1f} {'tx/s' if row.unit == 'lag' else row.unit:4s} {ratio:>8s} {rss:>16s}  {row.note}"
        )
    lines += [
        "",
        "vs ours = that row's median time / ours (above 1: ours is faster). peak RSS = our orchestrator process",
        "(in brackets: the largest tool process it ran). Every target is a fresh server with the same settings.",
    ]
    return "\n".join(lines)
