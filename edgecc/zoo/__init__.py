"""Model-zoo runs: a TOML zoo file, stages per (model, target) pair, workers (processes or Ray), reports, baselines."""

from __future__ import annotations
