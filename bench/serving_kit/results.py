"""What a benchmark run measured: cells, servers, in-process limits; JSON-ready."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from serving_kit.cpu import CpuShare
from serving_kit.wrk import LoadFigures


@dataclass(frozen=True)
class Cell:
    """One load shape: a model, rows per request, concurrent connections."""

    model: str
    rows: int
    concurrency: int

    @property
    def key(self) -> str:
        return f"{self.model} {self.rows}-row c{self.concurrency}"


@dataclass
class CellResult:
    cell: Cell
    figures: LoadFigures | None = None
    error: str | None = None
    cpu: CpuShare | None = None  # during the measured load

    @property
    def cpu_ms_per_request(self) -> float | None:
        """Server CPU per answered request: robust to other processes using the machine."""
        if self.cpu is None or self.figures is None or not self.figures.req_per_s:
            return None
        return self.cpu.server_pct * 10 / self.figures.req_per_s


@dataclass
class ServerResult:
    """One server process: its start, its memory, and every cell it was loaded with."""

    variant: str
    model: str
    ready_s: float | None = None
    ready_cpu_s: float | None = None
    peak_rss_bytes: int | None = None
    log_rows: int | None = None  # rows the prediction log stored during this run (log variants)
    error: str | None = None
    cells: list[CellResult] = field(default_factory=list)

    @property
    def peak_rss_mib(self) -> float | None:
        return None if self.peak_rss_bytes is None else self.peak_rss_bytes / 2**20

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "model": self.model,
            "ready_s": self.ready_s,
            "ready_cpu_s": self.ready_cpu_s,
            "peak_rss_mib": self.peak_rss_mib,
            "log_rows": self.log_rows,
            "error": self.error,
            "cells": [
                {
                    "cell": cell.cell.key,
                    "rows": cell.cell.rows,
                    "concurrency": cell.cell.concurrency,
                    "figures": cell.figures.to_dict() if cell.figures else None,
                    "cpu_pct_of_one_core": asdict(cell.cpu) if cell.cpu else None,
                    "server_cpu_ms_per_request": cell.cpu_ms_per_request,
                    "error": cell.error,
                }
                for cell in self.cells
            ],
        }


@dataclass(frozen=True)
class InProcess:
    """A model's predict cost in this process, no HTTP: the physical limit of a server."""

    model: str
    proba_rows_per_s: float  # predict_proba on 1,000-row DataFrames
    decode_check_proba_rows_per_s: float  # the same after orjson decoding and validation
    single_row_proba_ms: float  # median predict_proba of one row


@dataclass
class RunResults:
    servers: list[ServerResult] = field(default_factory=list)
    in_process: dict[str, InProcess] = field(default_factory=dict)

    def figures(self, variant: str, cell: Cell) -> LoadFigures | None:
        found = self.cell_result(variant, cell)
        return found.figures if found else None

    def cell_result(self, variant: str, cell: Cell) -> CellResult | None:
        for server in self.servers:
            if server.variant == variant and server.model == cell.model:
                for result in server.cells:
                    if result.cell == cell and result.figures is not None:
                        return result
        return None

    def server(self, variant: str, model: str) -> ServerResult | None:
        return next(
            (s for s in self.servers if s.variant == variant and s.model == model and not s.error),
            None,
        )
