"""The catalog: pools, their operators, user units and business systems."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.core.config_files import load_config

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class Operator(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_PATTERN)
    name: str


class Pool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_PATTERN)
    name: str
    operator: str


class Unit(BaseModel):
    """A user unit (使用单位)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_PATTERN)
    name: str


class System(BaseModel):
    """A business system (业务系统) with its classified-protection (等保) level."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_PATTERN)
    name: str
    unit: str
    pool: str
    mlps_level: int = Field(ge=1, le=5, description="等保 level")


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operators: list[Operator]
    pools: list[Pool] = Field(min_length=1)
    units: list[Unit] = []
    systems: list[System] = []

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        operators = {o.id for o in self.operators}
        pools = {p.id for p in self.pools}
        units = {u.id for u in self.units}
        for i, pool in enumerate(self.pools):
            if pool.operator not in operators:
                raise ValueError(f"pools[{i}].operator: unknown operator {pool.operator!r}")
        for i, system in enumerate(self.systems):
            if system.unit not in units:
                raise ValueError(f"systems[{i}].unit: unknown unit {system.unit!r}")
            if system.pool not in pools:
                raise ValueError(f"systems[{i}].pool: unknown pool {system.pool!r}")
        for name, items in (
            ("operators", self.operators),
            ("pools", self.pools),
            ("units", self.units),
            ("systems", self.systems),
        ):
            ids = [item.id for item in items]
            if len(ids) != len(set(ids)):
                raise ValueError(f"{name}: duplicate id")
        return self

    @property
    def pool_ids(self) -> list[str]:
        return [p.id for p in self.pools]

    def pool(self, pool_id: str) -> Pool | None:
        return next((p for p in self.pools if p.id == pool_id), None)

    def operator_of(self, pool_id: str) -> Operator | None:
        pool = self.pool(pool_id)
        return next((o for o in self.operators if pool and o.id == pool.operator), None)

    def unit_ids(self) -> set[str]:
        return {u.id for u in self.units}

    def system_ids(self) -> set[str]:
        return {s.id for s in self.systems}


def load_catalog(config_dir: Path) -> Catalog:
    return load_config(Catalog, config_dir / "catalog.yaml")
