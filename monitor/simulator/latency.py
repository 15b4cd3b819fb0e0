"""A simulated latency distribution: fixed, uniform or lognormal (by median and p99)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

_Z99 = 2.3263478740408408  # standard normal quantile at 0.99


@dataclass(frozen=True)
class Latency:
    """A latency distribution in milliseconds: fixed, uniform or lognormal."""

    dist: str = "fixed"
    value: float = 0.0  # fixed
    min: float = 0.0  # uniform
    max: float = 0.0  # uniform
    median: float = 0.0  # lognormal
    p99: float = 0.0  # lognormal

    def sample_s(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        if self.dist == "uniform":
            return rng.uniform(self.min, self.max) / 1000.0
        if self.dist == "lognormal":
            if self.median <= 0:
                return 0.0
            sigma = (math.log(self.p99) - math.log(self.median)) / _Z99
            return rng.lognormvariate(math.log(self.median), sigma) / 1000.0
        return self.value / 1000.0
