"""Report for ODE-solver sweeps: `python -m ideas.ode_solvers.report <run or sweep dirs...> [--out DIR]`.

Groups runs by solver/path/flow_steps (keys that never vary are left out of the labels). Imports no torch.
"""

import sys

from core.report import main

GROUP_KEYS = ["solver", "path", "flow_steps"]
TITLE = "ODE solvers and probability paths for flow policies"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], GROUP_KEYS, TITLE, prog="python -m ideas.ode_solvers.report"))
