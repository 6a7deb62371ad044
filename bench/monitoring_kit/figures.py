"""What a run measured, JSON-ready: the daily job per size, the baselines, the writer's cost."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from monitoring_kit.children import ChildRun
from monitoring_kit.traffic import WriterCost

MIB = 2**20


@dataclass
class JobPoint:
    """The daily job at one traffic size: several fresh-process runs of it."""

    rows: int
    source: str  # how the summaries were made: "raw log + folded" or "folded only"
    fill_s: float
    runs: list[ChildRun] = field(default_factory=list)

    @property
    def job_s(self) -> float:
        return statistics.median(run.answer["job_s"] for run in self.runs)

    @property
    def wall_s(self) -> float:
        return statistics.median(run.wall_s for run in self.runs)

    @property
    def peak_mib(self) -> float:
        return max(run.answer["peak_rss_bytes"] for run in self.runs) / MIB

    @property
    def answer(self) -> dict[str, Any]:
        return self.runs[0].answer

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "source": self.source,
            "fill_s": self.fill_s,
            "job_s_median": self.job_s,
            "process_wall_s_median": self.wall_s,
            "peak_rss_mib": self.peak_mib,
            "summary_rows": self.answer["summary_rows"],
            "flagged": self.answer["flagged"],
            "runs": [_run_dict(run) for run in self.runs],
        }


@dataclass
class Baseline:
    """A baseline's single run, or why it has none."""

    name: str
    run: ChildRun | None = None
    error: str | None = None

    @property
    def job_s(self) -> float | None:
        return None if self.run is None else float(self.run.answer["job_s"])

    @property
    def peak_mib(self) -> float | None:
        return None if self.run is None else self.run.answer["peak_rss_bytes"] / MIB

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "error": self.error,
                "run": None if self.run is None else _run_dict(self.run)}  # fmt: skip


@dataclass
class Aggregation:
    """The writer's folding cost against its inserts, over every 1,000-record batch."""

    cost: WriterCost

    @property
    def fold_ratio(self) -> float:
        return self.cost.fold_s / self.cost.insert_s

    @property
    def fold_and_save_ratio(self) -> float:
        return (self.cost.fold_s + self.cost.save_s) / self.cost.insert_s

    def per_batch_us(self, seconds: float) -> float:
        return seconds / self.cost.batches * 1e6

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.cost), "fold_over_insert": self.fold_ratio,
                "fold_and_save_over_insert": self.fold_and_save_ratio}  # fmt: skip


def _run_dict(run: ChildRun) -> dict[str, Any]:
    return {"answer": run.answer, "process_wall_s": run.wall_s,
            "tree_peak_rss_mib": run.tree_peak_rss_bytes / MIB}  # fmt: skip
