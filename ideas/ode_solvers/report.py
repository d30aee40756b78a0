"""Report for ODE-solver sweeps: `python -m ideas.ode_solvers.report <run or sweep dirs...> [--out DIR]`.

Arms are solver/path/flow_steps (keys that never vary are left out of the labels). The primary question: does each
arm differ from FlowRL's own sampler (explicit midpoint, one step, linear path) in AUC against env frames? NFE per
action (velocity evaluations the sampler measured) is a column of every table and the x axis of an extra figure, so
accuracy can be told apart from compute. Imports no torch.
"""

import sys

from core.analysis import DEFAULT_IGNORED_FIELDS, ExtraColumn, ReportSpec, ScatterFigure, main

SPEC = ReportSpec(
    title="ODE solvers and probability paths for flow policies",
    group_keys=("solver", "path", "flow_steps"),
    reference={"solver": "midpoint", "path": "linear", "flow_steps": 1},  # FlowRL's sampler
    primary_metric="auc",
    question="Does each solver/path/flow-steps arm learn faster or slower per env step than FlowRL's own sampler "
             "(midpoint, one step, linear path), measured by AUC of evaluation return against env frames?",
    extra_columns=(ExtraColumn("nfe", "NFE/action", summary="nfe_per_action", train="perf/nfe_per_action"),),
    extra_figures=(ScatterFigure("auc_vs_nfe.png", x="nfe", y="auc",
                                 title="AUC against velocity evaluations per action (dots = runs, crosses = means)"),),
    ignored_fields=(*DEFAULT_IGNORED_FIELDS, "compile", "compile_mode", "timing_every"),  # how it is compiled and timed
)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], SPEC, prog="python -m ideas.ode_solvers.report"))
