"""Dataset rows: what one episode is started from (seed, config, prompts), from Python dicts or a JSONL file.

Rows are validated up front, before any session opens, so a row without a seed fails `make()` with the row's
position instead of surfacing later as one odd episode among thousands. Repeated rows (or `samples > 1`) are
independent episodes; each gets a distinct, stable `env_id` so a recording can be matched back to its row.
"""

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcpsim.errors import DatasetError

KNOWN_FIELDS = ("id", "seed", "system_prompt", "user_prompt", "config", "env_id")

DatasetSource = str | Path | Iterable[Mapping[str, Any]]


@dataclass(frozen=True)
class Row:
    """One dataset row; unknown keys are kept in `extra` (e.g. a reference answer for a `reward_fn`)."""

    id: str
    seed: int
    system_prompt: str | None = None
    user_prompt: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    env_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The row as stored in a recording's header; `make()` accepts it back unchanged."""
        record: dict[str, Any] = {"env_id": self.env_id, "id": self.id, "seed": self.seed}
        if self.config:
            record["config"] = self.config
        if self.system_prompt is not None:
            record["system_prompt"] = self.system_prompt
        if self.user_prompt is not None:
            record["user_prompt"] = self.user_prompt
        record.update(self.extra)
        return record


def _seed(value: Any, where: str) -> int:
    if value is None:
        raise DatasetError(f"{where} has no 'seed'; every row needs an integer seed (e.g. {{\"seed\": 0}})")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DatasetError(f"{where}: 'seed' must be an integer, got {value!r}")
    try:
        seed = int(value)
    except ValueError:
        raise DatasetError(f"{where}: 'seed' must be an integer, got {value!r}") from None
    if seed < 0:
        raise DatasetError(f"{where}: 'seed' must be non-negative, got {seed}")
    return seed


def _optional_text(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise DatasetError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def parse_row(raw: Any, index: int, where: str | None = None) -> Row:
    """Validate one raw row; `where` names it in errors (defaults to its position)."""
    where = where or f"dataset row {index}"
    if not isinstance(raw, Mapping):
        raise DatasetError(f"{where} must be a JSON object, got {type(raw).__name__}")
    seed = _seed(raw.get("seed"), where)
    config = raw.get("config") or {}
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: 'config' is not valid JSON: {exc}") from None
    if not isinstance(config, Mapping):
        raise DatasetError(f"{where}: 'config' must be a JSON object, got {type(config).__name__}")
    row_id = raw.get("id")
    env_id = raw.get("env_id")
    return Row(
        id=str(row_id) if row_id is not None else f"row{index}",
        seed=seed,
        system_prompt=_optional_text(raw, "system_prompt", where),
        user_prompt=_optional_text(raw, "user_prompt", where),
        config=dict(config),
        extra={k: v for k, v in raw.items() if k not in KNOWN_FIELDS},
        env_id=str(env_id) if env_id is not None else None,
    )


def read_jsonl(path: Path) -> list[tuple[str, Any]]:
    """(location, parsed value) per non-blank line of a JSONL file; errors name the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read dataset {path}: {exc.strerror or exc}") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((f"{path}:{lineno}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    if not rows:
        raise DatasetError(f"dataset {path} has no rows")
    return rows


def load_rows(source: DatasetSource) -> list[Row]:
    """Rows from a list of dicts or a JSONL path (blocking file read: call it off the event loop)."""
    if isinstance(source, str | Path):
        located = read_jsonl(Path(source))
        return [parse_row(raw, i, where) for i, (where, raw) in enumerate(located)]
    if isinstance(source, Mapping):
        raise DatasetError("dataset must be a list of rows (dicts) or a JSONL path, not a single dict")
    rows = [parse_row(raw, i) for i, raw in enumerate(source)]
    if not rows:
        raise DatasetError("dataset has no rows")
    return rows


def assign_env_ids(rows: list[Row], samples: int = 1) -> list[Row]:
    """Repeat each row `samples` times and give every copy a distinct env id.

    A row id used once (and `samples == 1`) is its own env id; otherwise copies are `id#0`, `id#1`, ... in dataset
    order. Rows that already carry an `env_id` (from a recording's header) keep it.
    """
    if samples < 1:
        raise DatasetError(f"samples must be at least 1, got {samples}")
    totals = Counter(row.id for row in rows if row.env_id is None)
    seen: Counter[str] = Counter()
    out: list[Row] = []
    for row in rows:
        for _ in range(samples):
            if row.env_id is not None and samples == 1:
                out.append(row)
                continue
            base = row.env_id or row.id
            if totals[row.id] * samples == 1 and row.env_id is None:
                env_id = base
            else:
                env_id = f"{base}#{seen[base]}"
                seen[base] += 1
            out.append(Row(row.id, row.seed, row.system_prompt, row.user_prompt, row.config, row.extra, env_id))
    duplicates = [env_id for env_id, n in Counter(r.env_id for r in out).items() if n > 1]
    if duplicates:
        raise DatasetError(f"duplicate env_id in dataset: {', '.join(map(str, duplicates[:5]))}")
    return out


def seed_rows(seeds: Iterable[int]) -> list[dict[str, Any]]:
    """A minimal dataset: one row per seed (`mcpsim rollout --seeds 0-63`, the demo)."""
    return [{"id": f"seed{seed}", "seed": seed} for seed in seeds]
