"""The one home of the trajectory file (`mcpsim.trajectory/2`, and `/1`): its records, its writer, its readers.

- `format.py`: the format (`FORMAT`, the line types) and its records: `Row`, `Action`, `Step`, `Trajectory`.
- `turns.py`: `Turn`, one model call of an LLM policy (`/2`): new messages, raw completion, token data.
- `writer.py`: `Recorder`, which writes the file while a rollout runs.
- `reader.py`: `read_recording` (strict or lenient, errors naming `FILE:LINE`), on one scan and one set of checks.
- `episodes.py`: `read_episodes`, the raw episodes of a file still being written (the viewer's view).
- `render.py`: a GIF or PNG frames of one episode (`mcpsim render`; imported on use: it needs Pillow).
"""

from typing import TYPE_CHECKING

from mcpsim.faces import lazy_names

if TYPE_CHECKING:
    from mcpsim.trajectory.episodes import Episode, EpisodeFile, read_episodes
    from mcpsim.trajectory.format import FORMAT, OUTCOMES, Action, Observation, Row, Step, Trajectory, parse_row
    from mcpsim.trajectory.reader import Recording, read_recording
    from mcpsim.trajectory.turns import Turn
    from mcpsim.trajectory.writer import Recorder, header_record

__all__ = [  # noqa: RUF022
    "Action",
    "Episode",
    "EpisodeFile",
    "FORMAT",
    "OUTCOMES",
    "Observation",
    "Recorder",
    "Recording",
    "Row",
    "Step",
    "Trajectory",
    "Turn",
    "header_record",
    "parse_row",
    "read_episodes",
    "read_recording",
]

__getattr__ = lazy_names(
    __name__,
    {
        "Episode": "episodes",
        "EpisodeFile": "episodes",
        "read_episodes": "episodes",
        "FORMAT": "format",
        "OUTCOMES": "format",
        "Action": "format",
        "Observation": "format",
        "Row": "format",
        "Step": "format",
        "Trajectory": "format",
        "parse_row": "format",
        "Recording": "reader",
        "read_recording": "reader",
        "Turn": "turns",
        "Recorder": "writer",
        "header_record": "writer",
    },
)
