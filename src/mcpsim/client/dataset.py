"""Datasets: the rows episodes are started from (`trajectory.format.Row`), from Python dicts or a JSONL file.

Rows are validated up front, before any session opens, so a row without a seed fails `make()` with the row's
position instead of surfacing later as one odd episode among thousands. Repeated rows (or `samples > 1`) are
independent episodes; each gets a distinct, stable `env_id` so a recording can be matched back to its row.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mcpsim.errors import DatasetError, JsonTextError
from mcpsim.protocol.jsontext import parse_json_text
from mcpsim.trajectory.format import Row, parse_row

DatasetSource = str | Path | Iterable[Mapping[str, Any]]


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
            rows.append((f"{path}:{lineno}", parse_json_text(line)))
        except JsonTextError as exc:
            raise DatasetError(f"{path}:{lineno}: not valid JSON ({exc})") from None
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
