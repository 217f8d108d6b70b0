"""The rollout client: environments over MCP sessions, policies, concurrent rollouts, recording and replay.

```python
import mcpsim
envs = mcpsim.make("http://127.0.0.1:9000/mcp", dataset=[{"id": "a", "seed": 1}])
trajs = await mcpsim.rollout(envs, mcpsim.RandomPolicy(0), steps=30, record="run.jsonl")
```
"""

from mcpsim.client.advantages import group_advantages, trajectory_advantages
from mcpsim.client.env import Environment, EnvSession, make
from mcpsim.client.policies import (
    EpisodeContext,
    FireworksPolicy,
    OpenAIPolicy,
    PlaybackPolicy,
    Policy,
    RandomPolicy,
    ScriptedPolicy,
)
from mcpsim.client.replay import AuditReport, Divergence, audit, replay
from mcpsim.client.rollout import rollout
from mcpsim.errors import (
    ClientError,
    ConnectError,
    DatasetError,
    EnvError,
    EpisodeError,
    InvalidAction,
    PolicyError,
    TrajectoryError,
)
from mcpsim.trajectory import Action, Recording, Row, Step, Trajectory, read_recording

TrajectoryFileError = TrajectoryError
"""The name this package has always exported for `mcpsim.errors.TrajectoryError` (one class, two names)."""

__all__ = [
    "Action",
    "AuditReport",
    "ClientError",
    "ConnectError",
    "DatasetError",
    "Divergence",
    "EnvError",
    "EnvSession",
    "Environment",
    "EpisodeContext",
    "EpisodeError",
    "FireworksPolicy",
    "InvalidAction",
    "OpenAIPolicy",
    "PlaybackPolicy",
    "Policy",
    "PolicyError",
    "RandomPolicy",
    "Recording",
    "Row",
    "ScriptedPolicy",
    "Step",
    "Trajectory",
    "TrajectoryError",
    "TrajectoryFileError",
    "audit",
    "group_advantages",
    "make",
    "read_recording",
    "replay",
    "rollout",
    "trajectory_advantages",
]
