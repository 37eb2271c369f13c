"""The measuring tools of benchmarks/: the suite's paired ratio, cold_overhead.py's instrumented
stacks (they must compute the hand-written step's gradients, and their clock must count only the
timed operations), compiled_core.py's module list, build stamp and arithmetic,
cache_traffic.py's reading of cachegrind's summary, weight_products.py's two ways of forming a
loop's weight cotangent, and the machine line of the reports."""

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def benchmarks(benchmarks_on_path):
    import cold_overhead
    import suite
    return suite, cold_overhead


def _round_medians(**stacks):
    return {name: {"round_medians": list(meds)} for name, meds in stacks.items()}


loads = st.lists(st.floats(0.5, 3.0), min_size=1, max_size=12)


@given(loads=loads, factor=st.floats(0.2, 5.0))
def test_paired_ratio_cancels_the_hosts_drift(benchmarks, loads, factor):
    """Each round's times scaled by the host's load of that round: the paired ratio is the
    stacks' true ratio whatever the loads."""
    suite, _ = benchmarks
    base = 4.0
    res = _round_medians(numpy=[base * load for load in loads],
                         fnn=[factor * base * load for load in loads])
    assert suite.paired_ratio(res, "fnn", "numpy") == pytest.approx(factor, rel=1e-9)


def test_paired_ratio_skips_failed_rounds_and_stacks(benchmarks):
    suite, _ = benchmarks
    res = _round_medians(numpy=[2.0, 2.0, None, 2.0], fnn=[3.0, None, 9.0, 2.2])
    assert suite.paired_ratio(res, "fnn", "numpy") == pytest.approx(1.3)  # rounds 0 and 3
    res["fnn"]["failed"] = "gradients differ"
    assert suite.paired_ratio(res, "fnn", "numpy") is None
    assert suite.paired_ratio(_round_medians(numpy=[1.0]), "torch", "numpy") is None


@pytest.mark.parametrize("stack", ["bare_step", "fnn_step"])
def test_cold_overhead_stacks_compute_the_hand_written_gradients(benchmarks, stack):
    _, cold = benchmarks
    from stacks import numpy_ref

    weights, batch = cold._problem(12, 16, 5)
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    b64 = {"x": batch["x"].astype(np.float64), "y": batch["y"]}
    init, ref_step = numpy_ref.mlp(0.1)
    ref_params, ref_loss, ref_grads = ref_step(init(w64), b64)
    clock = cold.CLOCK
    params, loss, grads = getattr(cold, stack)(clock, 0.1)({k: v.copy() for k, v in w64.items()}, b64)
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-12)
    assert sorted(grads) == sorted(ref_grads)
    for k in ref_grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-10, atol=1e-14, err_msg=k)
        np.testing.assert_allclose(params[k], ref_params[k], rtol=1e-12, err_msg=k)  # the SGD step


def test_the_clock_counts_only_wrapped_calls(benchmarks):
    _, cold = benchmarks
    import time

    clock = cold.Clock()
    slow = clock.wrap(lambda: time.sleep(0.02))
    t0 = time.perf_counter()
    slow()
    time.sleep(0.03)  # outside: not counted
    total = time.perf_counter() - t0
    assert 0.02 <= clock.inside < total - 0.025
    with pytest.raises(ZeroDivisionError):
        clock.wrap(lambda: 1 / 0)()  # an exception still stops the clock
    assert clock.inside < total


@pytest.fixture(scope="module")
def compiled_core(benchmarks_on_path):
    import compiled_core
    return compiled_core


def test_every_module_named_for_compiling_exists(compiled_core):
    """compiled_core.py's list resolves to modules of this checkout (a rename would break the
    build there): the tracer among them, no package __init__ and nothing outside fnn/."""
    modules = compiled_core.modules_to_compile(compiled_core.ROOT)
    assert "fnn/autodiff/tracer.py" in modules and "fnn/tree.py" in modules
    for m in modules:
        assert m.startswith("fnn/") and m.endswith(".py") and not m.endswith("__init__.py"), m
        assert os.path.isfile(os.path.join(compiled_core.ROOT, m)), m


def test_a_module_name_that_matches_nothing_is_an_error(compiled_core, tmp_path, monkeypatch):
    (tmp_path / "fnn").mkdir()
    (tmp_path / "fnn" / "tree.py").write_text("")
    monkeypatch.setattr(compiled_core, "COMPILED", ("fnn/tree.py", "fnn/gone.py"))
    with pytest.raises(FileNotFoundError, match="gone.py"):
        compiled_core.modules_to_compile(str(tmp_path))


def test_the_build_stamp_follows_the_source(compiled_core, tmp_path):
    """A changed module changes the stamp, so a stale compiled copy is rebuilt."""
    for top in ("fnn", "benchmarks"):
        (tmp_path / top).mkdir()
    module = tmp_path / "fnn" / "tree.py"
    module.write_text("x = 1\n")
    before = compiled_core.source_stamp(str(tmp_path), "3.0")
    assert compiled_core.source_stamp(str(tmp_path), "3.0") == before
    assert compiled_core.source_stamp(str(tmp_path), "3.1") != before  # another Cython
    module.write_text("x = 2\n")
    assert compiled_core.source_stamp(str(tmp_path), "3.0") != before


@given(hand=st.floats(1e5, 1e6), extra=st.floats(1e4, 1e6), kept=st.floats(0.0, 2.0))
def test_fixed_cost_change_is_relative_to_the_work_above_the_hand_written_step(compiled_core, hand,
                                                                                extra, kept):
    change = compiled_core.fixed_cost_change(hand, hand + extra, hand + kept * extra)
    assert change == pytest.approx(kept - 1.0, abs=1e-9)


def test_a_build_folder_with_other_files_is_refused(compiled_core, tmp_path):
    """--build-dir pointed at a folder that no earlier build made: nothing in it is removed."""
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(SystemExit, match="not empty"):
        compiled_core.build_copy(str(tmp_path), "3.0")
    assert keep.read_text() == "mine"


# --- cache_traffic.py ----------------------------------------------------------------------------

CACHEGRIND_SUMMARY = """\
==6926== I   refs:      127,771
==6926== I1  misses:      1,075
==6926== LLi misses:      1,072
==6926==
==6926== D   refs:       39,669  (29,403 rd   + 10,266 wr)
==6926== D1  misses:      1,569  ( 1,225 rd   +    344 wr)
==6926== LLd misses:      1,328  ( 1,016 rd   +    312 wr)
==6926== LL misses:       2,400  ( 2,088 rd   +    312 wr)
"""


@pytest.fixture(scope="module")
def cache_traffic(benchmarks_on_path):
    import cache_traffic
    return cache_traffic


def test_cache_summary_gives_instructions_and_the_last_levels_data_misses(cache_traffic):
    assert cache_traffic.parse_totals(CACHEGRIND_SUMMARY) == (127_771, 1_016, 312)
    with pytest.raises(RuntimeError, match="no cache summary"):
        cache_traffic.parse_totals("==1== I   refs: 5\n")  # a run without the cache simulation


@given(setup=st.tuples(*[st.integers(0, 10**9)] * 3), step=st.tuples(*[st.integers(0, 10**7)] * 3),
       steps=st.integers(1, 8))
def test_per_step_counts_remove_the_setup(cache_traffic, setup, step, steps):
    long = tuple(a + steps * b for a, b in zip(setup, step))
    assert cache_traffic.per_step(setup, long, steps) == pytest.approx(step)


def test_cache_traffic_runs_the_suites_workloads(cache_traffic):
    from stacks import fnn_impl, numpy_ref
    assert set(cache_traffic.WORKLOADS) == set(numpy_ref.WORKLOADS) == set(fnn_impl.WORKLOADS)


def test_cpu_description_names_the_last_level_cache(benchmarks_on_path):
    """The reports' machine line tells hosts of one model name apart by family and cache."""
    import machine

    text = machine.cpu_description()
    assert text.strip()
    caches = "/sys/devices/system/cpu/cpu0/cache"
    if not os.path.isdir(caches):
        pytest.skip("no cache description in sysfs here")
    levels = {}
    for index in os.listdir(caches):
        if index.startswith("index"):
            with open(os.path.join(caches, index, "level")) as f:
                level = int(f.read())
            with open(os.path.join(caches, index, "size")) as f:
                levels[level] = f.read().strip()
    top = max(levels)
    assert f"L{top} {levels[top]}" in text


def test_weight_products_times_ways_that_give_the_same_gradient(benchmarks_on_path):
    import weight_products
    per_step, joined = weight_products._ways(np, hidden=5, batch=3, steps=4).values()
    np.testing.assert_allclose(joined(), per_step(), rtol=1e-5, atol=1e-5)
    formed, kept = (fn() for fn in weight_products._loop_steps().values())
    for name in ("w_hh", "w_ih"):
        np.testing.assert_allclose(kept["rnn"][name], formed["rnn"][name], rtol=1e-4, atol=1e-6)
