"""benchmarks.learning's comparison of two cases: AUC only over the frames both ran, never a longer run's tail."""

import numpy as np

from benchmarks import learning


def test_comparison_uses_only_the_frames_both_cases_ran(tmp_path, monkeypatch):
    monkeypatch.setattr(learning, "RESULTS", tmp_path)
    # the `against` case ran 100 frames at a flat 10; ours ran 200: 10 for the first 100, then 1000
    (tmp_path / "learning_base.csv").write_text("seed,frame,return\n" + "".join(
        f"{s},{f},10\n" for s in (0, 1) for f in (0, 50, 100)))
    frames = np.array([0, 50, 100, 150, 200])
    ours = {s: (frames, np.array([10.0, 10, 10, 1000, 1000])) for s in (0, 1)}
    case = learning.Case("m", (), rule="measured", note="", against="base")
    result = learning.compare(case, ours)
    assert result["compared_over_frames"] == 100
    assert result["auc_common"] == result["against_mean_auc"] == 10.0 and result["auc_ratio"] == 1.0
    assert learning.compare(learning.Case("m", (), rule="measured", note=""), ours) == {}  # no against: nothing
