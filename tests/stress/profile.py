"""Stress profiles: `quick` runs inside `make test`; `long` (the issue's full figures) behind `make stress`."""

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    concurrent_sessions: int
    steps_per_session: int
    churn_sessions: int
    churn_concurrency: int
    fuzz_examples: int


QUICK = Profile(  # sized so that `make test` fits its 20 minutes on a 2-core CI machine; LONG has the full figures
    "quick", concurrent_sessions=32, steps_per_session=10, churn_sessions=64, churn_concurrency=16, fuzz_examples=30
)
LONG = Profile(
    "long",
    concurrent_sessions=200,
    steps_per_session=50,
    churn_sessions=10_000,
    churn_concurrency=32,
    fuzz_examples=1000,
)

PROFILE = LONG if os.environ.get("MCPSIM_STRESS") == "long" else QUICK
