"""Seeds of instances: integers in [0, 2**63), random when a client gives none."""

import secrets

MAX_SEED = 2**63 - 1


def random_seed() -> int:
    return secrets.randbelow(2**31)
