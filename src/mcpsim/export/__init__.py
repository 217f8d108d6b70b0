"""Training datasets from a trajectory file (`mcpsim export FILE --format hf|chat|trl --out DIR`).

- `rows.py`: one row per episode as plain Python (messages, reward, group, advantage, token ids, logprobs,
  masks), and the TRL and chat views of it; no third-party import, so it is testable anywhere.
- `write.py`: the files: Parquet through Hugging Face `datasets` (`hf`, `trl`; the `export` extra), JSONL
  (`chat`).
"""

from mcpsim.export.rows import chat_record, episode_row, trl_row
from mcpsim.export.write import FORMATS, export

__all__ = ["FORMATS", "chat_record", "episode_row", "export", "trl_row"]
