"""Report for the continual-learning sweeps: `python -m ideas.learnable_dropout.report <run or sweep dirs...> [--out]`.

Methods are the `method` field; one-task sequences of fine-tuning are the single-task references forward transfer
is measured against (pass their sweep directory too). Writes report.md (P, F, FT with 90% bootstrap CIs per method and
sequence, per-task tables), metrics.csv, per_task.csv and the per-task success-curve figure of each sequence.
"""

import sys

from core.analysis.cw_report import ContinualReportSpec, main

SPEC = ContinualReportSpec(
    title="Continual World on Meta-World v3: CW's SAC with continual-learning baselines",
    group_keys=("method",),
    reference={"method": "finetune"},
)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], SPEC, prog="python -m ideas.learnable_dropout.report"))
