"""Which data a statistic is computed over, and which aggregate table answers it.

A `Scope` names a model, runs, domains and MoE layers. Without runs it means the model's
pooled runs (those without an intervention) and reads the `model_*` tables: a few rows
however many runs exist. With runs it reads the `run_*` tables of exactly those runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, Select, Table, cast, func, select
from sqlalchemy.orm import Session

from storage.errors import NotFound
from storage.schema import Model, Run
from storage.schema_aggregates import FAMILIES


@dataclasses.dataclass(frozen=True)
class Scope:
    """Filters of a statistic; None means no filter.

    `model` may be omitted when `runs` are given or when the store holds a single model.
    `layers` are absolute layer indices of MoE layers.
    """

    model: str | None = None
    runs: Sequence[int] | None = None
    domains: Sequence[str] | None = None
    layers: Sequence[int] | None = None


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A scope checked against the store."""

    model_id: int
    model: str
    num_experts: int
    top_k: int  # k: choices per token
    vocab_size: int
    layers: tuple[int, ...]
    runs: tuple[int, ...] | None  # None: the model's pooled runs, via the model_* tables
    domains: tuple[str, ...] | None

    def table(self, family: str) -> Table:
        f = FAMILIES[family]
        return (f.model_table if self.runs is None else f.run_table).__table__  # type: ignore[return-value]

    def where(self, table: Table, *, layer_columns: Sequence[str] = ("layer",)) -> list[Any]:
        """Conditions selecting this scope's rows of an aggregate table: the model or runs
        first, then the domains and layers."""
        conditions: list[ColumnElement[bool]] = [
            table.c.model_id == self.model_id
            if self.runs is None
            else table.c.run_id.in_(self.runs)
        ]
        if self.domains is not None and "domain" in table.c:
            conditions.append(table.c.domain.in_(self.domains))
        for column in layer_columns:
            if column in table.c:
                conditions.append(table.c[column].in_(self.layers))
        return conditions

    def grouped(
        self,
        family: str,
        by: Sequence[str],
        sums: Sequence[str],
        *,
        layer_columns: Sequence[str] = ("layer",),
    ) -> Select[Any]:
        """SELECT by..., SUM(v)... over this scope's rows of `family`, grouped by `by`."""
        t = self.table(family)
        return (
            select(*(t.c[b] for b in by), *(total(t.c[v]).label(v) for v in sums))
            .where(*self.where(t, layer_columns=layer_columns))
            .group_by(*(t.c[b] for b in by))
        )


def total(column: Any) -> Any:
    """SUM(column); integer sums come back as integers (PostgreSQL's are NUMERIC, which the
    driver would turn into slow Decimal objects)."""
    if isinstance(column.type, Integer):
        return cast(func.sum(column), BigInteger)
    return func.sum(column)


def resolve(session: Session, scope: Scope) -> Resolved:
    """Check `scope` against the store. NotFound: unknown model or run; ValueError: runs of
    several models, or no model named where the store holds several."""
    runs = None if scope.runs is None else tuple(sorted({int(r) for r in scope.runs}))
    model_id: int | None = None
    if runs is not None:
        found = session.execute(select(Run.id, Run.model_id).where(Run.id.in_(runs))).all()
        missing = set(runs) - {row.id for row in found}
        if missing:
            raise NotFound(f"no run with id {sorted(missing)}")
        model_ids = {row.model_id for row in found}
        if len(model_ids) > 1:
            raise ValueError("the runs of one statistic must belong to one model")
        model_id = model_ids.pop() if model_ids else None
    if scope.model is not None:
        named = session.scalar(select(Model.id).where(Model.name == scope.model))
        if named is None:
            raise NotFound(f"no model named {scope.model!r}")
        if model_id is not None and named != model_id:
            raise ValueError(f"runs {list(runs or ())} do not belong to model {scope.model!r}")
        model_id = named
    if model_id is None:
        ids = session.scalars(select(Model.id).limit(2)).all()
        if len(ids) != 1:
            raise ValueError("name a model: the store holds " + ("none" if not ids else "several"))
        model_id = ids[0]
    model = session.get(Model, model_id)
    assert model is not None
    stored = tuple(model.moe_layers or ())
    layers = stored if scope.layers is None else tuple(i for i in stored if i in set(scope.layers))
    return Resolved(
        model_id=model.id,
        model=model.name,
        num_experts=model.num_experts,
        top_k=model.top_k,
        vocab_size=model.vocab_size,
        layers=layers,
        runs=runs,
        domains=None if scope.domains is None else tuple(scope.domains),
    )
