"""What every simulated scenario shares: the registry entry and the `kernel` / `profile` parameters."""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import pandas as pd

from mmlab.core.params import ParamError, Params, text
from mmlab.sim.eras import Era, era_for
from mmlab.sim.profile import NAMED, Profile, by_name


@dataclasses.dataclass(frozen=True)
class SimParams(Params):
    """Parameters common to all simulations."""

    kernel: str = text("6.18", "kernel version (or era name); the era whose version range holds it is simulated (mmlab eras)")
    profile: str = text("reference", "machine profile: reference | desktop-2009 | host | path to a profile .json")

    def check(self) -> None:
        era_for(self.kernel)  # raises ParamError naming `kernel`
        if self.profile not in NAMED and not self.profile.endswith(".json"):
            raise ParamError("profile", self.profile, "reference | desktop-2009 | host | a profile .json path",
                             "is not a known profile")

    @property
    def era(self) -> Era:
        return era_for(self.kernel)

    def machine(self) -> Profile:
        return load_profile(self.profile)


@functools.lru_cache(maxsize=16)
def load_profile(name: str) -> Profile:
    """Profiles by name, read once per process (sweeps construct thousands of parameter objects)."""
    return by_name(name)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A simulated experiment: name shared with the real one, typed parameters, tidy rows out."""

    name: str
    description: str
    Params: type[SimParams]
    simulate: Callable[[SimParams], pd.DataFrame]

    def run(self, values: dict | None = None) -> pd.DataFrame:
        """Validate raw values (CLI strings or Python objects) and simulate."""
        return self.simulate(self.Params.from_mapping(values or {}))


def base_row(name: str, p: SimParams) -> dict:
    era = p.era
    return {"experiment": name, "method": "simulated", "kernel": p.kernel, "era": era.name, "profile": p.profile}
