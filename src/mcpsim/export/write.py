"""Writing an export: `hf` and `trl` as one Parquet file through Hugging Face `datasets` (explicit features, so
every file has the same schema whatever its episodes hold), `chat` as JSONL.

`datasets` is the optional `export` extra: without it `hf`/`trl` fail at once with the install command, before
reading the file. Reading is strict by default (a damaged recording is refused, naming its line), or lenient
(complete episodes only).
"""

import json
from pathlib import Path
from typing import Any

from mcpsim.client.advantages import trajectory_advantages
from mcpsim.errors import ConfigError, RecordingError
from mcpsim.export.rows import chat_record, episode_row, trl_row
from mcpsim.trajectory import read_recording

FORMATS = ("hf", "chat", "trl")
FILES = {"hf": "episodes.parquet", "trl": "trl.parquet", "chat": "chat.jsonl"}
INSTALL = "pip install 'mcpsim[export]'"


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            f"the hf and trl exports need Hugging Face datasets, which is not installed: {INSTALL}"
        ) from None
    return datasets


def _message_features(datasets: Any) -> Any:
    string = datasets.Value("string")
    call = {"id": string, "type": string, "function": {"name": string, "arguments": string}}
    return {"role": string, "content": string, "tool_calls": datasets.List(call), "tool_call_id": string}


def hf_features(datasets: Any) -> Any:
    value, lst = datasets.Value, datasets.List
    return datasets.Features(
        {
            "episode_id": value("string"),
            "group_id": value("string"),
            "row_id": value("string"),
            "seed": value("uint64"),
            "model": value("string"),
            "reward": value("float64"),
            "advantage": value("float64"),
            "success": value("bool"),
            "outcome": value("string"),
            "steps": value("int32"),
            "messages": lst(_message_features(datasets)),
            "images": value("int32"),
            "tools": value("string"),
            "sampling": value("string"),
            "token_ids": lst(value("int64")),
            "mask": lst(value("int8")),
            "logprobs": lst(value("float32")),
            "turn_token_ids": lst(lst(value("int64"))),
            "turn_logprobs": lst(lst(value("float32"))),
            "turn_masks": lst(lst(value("int8"))),
            "turn_prompt_ids": lst(lst(value("int64"))),
        }
    )


def trl_features(datasets: Any) -> Any:
    value, messages = datasets.Value, datasets.List(_message_features(datasets))
    return datasets.Features(
        {
            "prompt": messages,
            "completion": messages,
            "reward": value("float64"),
            "advantage": value("float64"),
            "group_id": value("string"),
            "seed": value("uint64"),
            "episode_id": value("string"),
        }
    )


def export(path: str | Path, fmt: str, out: str | Path, *, strict: bool = True) -> Path:
    """Write the export of the trajectory file `path` into the directory `out`; returns the file written."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    datasets = _datasets() if fmt != "chat" else None
    recording = read_recording(path, strict=strict)
    target = Path(out) / FILES[fmt]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordingError(f"cannot write the export to {out}: {exc.strerror or exc}") from None
    trajectories = [t for t in recording.trajectories if t.complete]
    if fmt == "chat":
        with target.open("w", encoding="utf-8") as file:
            for trajectory in trajectories:
                file.write(json.dumps(chat_record(trajectory), ensure_ascii=False) + "\n")
        return target
    advantages = trajectory_advantages(trajectories)
    rows = [episode_row(t, a, recording.header) for t, a in zip(trajectories, advantages, strict=True)]
    if fmt == "trl":
        rows, features = [trl_row(row) for row in rows], trl_features(datasets)
    else:
        features = hf_features(datasets)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(target))
    return target
