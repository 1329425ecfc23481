"""Score calibration: a detector's operating point becomes 0.5, the default `threshold` of a policy step.

A model card's threshold (e.g. the one giving 1% false positives on validation) or a policy's per-category
threshold is mapped to 0.5 by a monotone, piecewise-linear map with 0 -> 0 and 1 -> 1, so a step keeps
`threshold: 0.5` for the validated trade-off and moves along the curve (0.7 = stricter) without knowing the
model's raw probabilities. Order is kept, so ranking metrics (ROC-AUC) are unchanged by it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.floating]


def calibrate(p: Scores, threshold: float) -> Scores:
    """`p` (probabilities in [0, 1]) with `threshold` -> 0.5, in `p`'s own dtype. `threshold` is in (0, 1)."""
    low = 0.5 * p / threshold
    high = 0.5 + 0.5 * (p - threshold) / (1.0 - threshold)
    return np.where(p < threshold, low, high).astype(p.dtype, copy=False)


def calibrate_score(score: float, threshold: float) -> float:
    """`calibrate` for one score (in double precision)."""
    return float(calibrate(np.asarray(score, dtype=np.float64), threshold))
