"""The bench's table: medians of the runs, throughput, ratios against ours (of medians, and paired), peak RSS."""

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

    def paired_ratio(self, ours: Row) -> float | None:
        """The median over runs of this row's time / ours in the same run (None unless both ran each run).

        Each run measures ours and then its peers minutes apart; a shared VM's speed drifts by more
        than that (our copy: 21.5, 15.5 and 17.7 s in three runs of one bench), and a ratio of two
        medians can pair a slow minute with a fast one. A run's own ratio compares neighbours.
        """
        if not self.seconds or len(self.seconds) != len(ours.seconds) or 0 in ours.seconds:
            return None
        return statistics.median(mine / theirs for mine, theirs in zip(self.seconds, ours.seconds, strict=True))


def render(rows: list[Row], header: str) -> str:
    lines = [header, ""]
    cols = (
        f"{'section':8s} {'method':44s} {'median s':>9s} {'runs':>4s} {'throughput':>14s} {'vs ours':>8s}"
        f" {'paired':>7s} {'peak RSS':>16s}  note"
    )
    lines += [cols, "-" * len(cols)]
    ours_by_section: dict[str, Row] = {}
    for r in rows:  # the first "ours" row of a section is what the others compare with
        if r.ours and r.median and r.section not in ours_by_section:
            ours_by_section[r.section] = r
    for row in rows:
        if row.median is None:
            lines.append(
                f"{row.section:8s} {row.method:44s} {'-':>9s} {0:>4d} {'-':>14s} {'-':>8s} {'-':>7s} {'-':>16s}"
                f"  {row.skipped}"
            )
            continue
        rate = row.unit_amount / row.median if row.median > 0 else 0.0
        ours = ours_by_section.get(row.section)
        ratio = f"{row.median / ours.median:.2f}x" if ours and ours.median else "-"
        paired_value = row.paired_ratio(ours) if ours else None
        paired = f"{paired_value:.2f}x" if paired_value is not None else "-"
        if row.unit == "lag":  # the median is a lag, not a duration of work: no throughput, no ratio
            rate, ratio, paired = row.unit_amount, "-", "-"
        rss = "-"
        if row.rss_mb:
            rss = f"{max(row.rss_mb):.0f} MB"
            if row.tools_rss_mb and max(row.tools_rss_mb) > 0:
                rss += f" ({max(row.tools_rss_mb):.0f})"
        lines.append(
            f"{row.section:8s} {row.method:44s} {row.median:9.2f} {len(row.seconds):4d} "
            f"{rate:9.1f} {'tx/s' if row.unit == 'lag' else row.unit:4s} {ratio:>8s} {paired:>7s} {rss:>16s}  {row.note}"
        )
    lines += [
        "",
        "vs ours = that row's median time / ours (above 1: ours is faster). paired = the median of each run's own",
        "ratio (that row's time / ours in the same run): steadier when the machine's speed drifts between runs.",
        "peak RSS = our orchestrator process (in brackets: the largest tool process it ran). Every target is a",
        "fresh server with the same settings.",
    ]
    return "\n".join(lines)
