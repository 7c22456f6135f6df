"""Tests of anan_onnx.evaluation.statistics against hand-computed values, and of the
evaluation modules' imports without their optional dependencies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.statistics import significance_stars, wilcoxon_paired
from anan_onnx.install_hint import install_hint


def test_wilcoxon_all_positive_six():
    # n = 6, all differences positive: W- = 0; under H0 each of the 2^6 = 64 sign patterns is
    # equally likely, and only "all +" and "all -" are as extreme: p = 2/64 = 0.03125.
    r = wilcoxon_paired([0.5] * 6, [0.6, 0.7, 0.55, 0.8, 0.9, 0.65])
    assert r["p_value"] == pytest.approx(2 / 64)
    assert r["stars"] == "*" and r["statistic"] == 0.0 and r["n"] == 6
    assert r["median_difference"] > 0


def test_wilcoxon_all_positive_eight_gives_two_stars():
    r = wilcoxon_paired(list(range(8)), [i + 1 + i / 10 for i in range(8)])
    assert r["p_value"] == pytest.approx(2 / 256)  # 0.0078 < 0.01
    assert r["stars"] == "**"


def test_wilcoxon_mixed_signs_hand_computed():
    # Differences 1, 2, 3, -4, 5, 6: ranks 1..6, W- = 4 (W+ = 17), statistic = min = 4.
    # Subsets of {1..6} with rank sum <= 4: {}, {1}, {2}, {3}, {1,2}, {4}, {1,3} = 7,
    # so p = 2 · 7/64 = 0.21875.
    r = wilcoxon_paired([0] * 6, [1, 2, 3, -4, 5, 6])
    assert r["statistic"] == 4.0
    assert r["p_value"] == pytest.approx(14 / 64)
    assert r["stars"] == ""


def test_wilcoxon_zero_differences():
    r = wilcoxon_paired([0.7, 0.8, 0.9], [0.7, 0.8, 0.9])
    assert r["p_value"] == 1.0 and r["stars"] == "" and r["n_nonzero"] == 0
    # Zeros are dropped (zero_method="wilcox"): the 6 non-zero all-positive pairs remain.
    r = wilcoxon_paired([0.5] * 8, [0.5, 0.5, 0.6, 0.7, 0.55, 0.8, 0.9, 0.65])
    assert r["n"] == 8 and r["n_nonzero"] == 6
    assert r["p_value"] == pytest.approx(2 / 64)


def test_wilcoxon_input_errors():
    with pytest.raises(AnanError, match="equally many base and ANAN scores, got 2 and 3"):
        wilcoxon_paired([1, 2], [1, 2, 3])
    with pytest.raises(AnanError, match="NaN or Inf"):
        wilcoxon_paired([1, float("nan")], [1, 2])


def test_significance_stars_boundaries():
    assert [significance_stars(p) for p in (0.001, 0.0099, 0.01, 0.049, 0.05, 0.5)] == [
        "**", "**", "*", "*", "", "",
    ]  # fmt: skip
    assert significance_stars(float("nan")) == ""


def test_modules_import_without_optional_dependencies():
    # `import anan_onnx` must work with numpy, onnx, onnxruntime and pillow only.
    code = (
        "import sys\n"
        "for m in ('scipy', 'sklearn', 'matplotlib', 'tqdm'):\n"
        "    sys.modules[m] = None\n"
        "import anan_onnx.runtime.image_files, anan_onnx.evaluation.datasets\n"
        "import anan_onnx.evaluation.scores, anan_onnx.evaluation.report\n"
        "from anan_onnx.evaluation.statistics import wilcoxon_paired\n"
        "from anan_onnx.errors import AnanError\n"
        "try:\n"
        "    wilcoxon_paired([1, 2], [2, 3])\n"
        "except AnanError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # the hint that fits this installation (a source checkout here: pip install -e ...)
    assert f"scipy is needed for evaluation: {install_hint('eval')}" in out.stdout


def _holm_rejects(p: list[float], alpha: float) -> list[bool]:
    """Holm's procedure as written (1979): reject in ascending order while p(i) <= α/(m-i)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    rejected = [False] * len(p)
    for rank, i in enumerate(order):
        if p[i] > alpha / (len(p) - rank):
            break
        rejected[i] = True
    return rejected


@pytest.mark.parametrize(
    "p", [[0.01, 0.04, 0.03], [0.001, 0.2, 0.012, 0.04, 0.5], [0.3], [0.02, 0.02, 0.02]]
)
def test_holm_adjusted_p_rejects_as_the_procedure(p):
    from anan_onnx.evaluation.statistics import holm

    adjusted = holm(p)
    assert all(a >= raw for a, raw in zip(adjusted, p, strict=True))
    for alpha in (0.01, 0.0125, 0.025, 0.05, 0.06, 0.1):
        assert [a <= alpha for a in adjusted] == _holm_rejects(p, alpha), alpha


def test_holm_refuses_a_non_probability():
    from anan_onnx.evaluation.statistics import holm

    with pytest.raises(AnanError, match="p-values"):
        holm([0.1, 1.5])


@pytest.mark.parametrize("shift", [0.0, 0.08, 0.3])
def test_bootstrap_p_below_alpha_exactly_when_the_interval_excludes_zero(shift):
    import numpy as np

    from anan_onnx.evaluation.statistics import bootstrap_intervals, bootstrap_p_value

    d = np.random.default_rng(3).normal(shift, 1.0, 60)

    def mean(i):
        return float(d[i].mean())

    for level in (0.9, 0.95, 0.99):
        low, high = bootstrap_intervals(len(d), {"d": mean}, level=level)["d"]
        excluded = low > 0 or high < 0
        # one draw's share of slack: the percentile interpolates between draws
        p = bootstrap_p_value(len(d), mean)
        if abs(p - (1 - level)) > 2 / 1000:
            assert (p < 1 - level) == excluded, (level, p, low, high)
