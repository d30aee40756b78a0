"""`python -m core.envs`: every task name of every family, one per line."""

from core.envs import all_tasks

print("\n".join(all_tasks()))
