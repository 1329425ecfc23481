"""The base of every policy-file model: unknown keys are errors and parsed values never change.

`extra="forbid"` turns a misspelt key into a load error that names it (a typo must not silently
disable a step); `frozen=True` because a compiled policy is shared by concurrent requests.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
