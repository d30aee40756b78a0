"""Continual RL on Continual World (Meta-World v3): CW's SAC, the standard baselines, and (next) learnable dropout."""
