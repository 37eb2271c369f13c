"""The stacks of benchmarks/tape_floor.py compute the hand-written step's gradients: the bare
tapes (W1 and the W4 loop) and every rung of fnn's W1 ladder, in float64."""

import pytest


@pytest.fixture(scope="module")
def tape_floor(benchmarks_on_path):
    import tape_floor as module
    return module


@pytest.mark.parametrize("workload", ["mlp", "rnn"])
def test_every_stack_matches_the_hand_written_gradients(tape_floor, workload):
    stacks = tape_floor.stacks_for(workload)
    assert list(stacks)[0] == "numpy (hand-written)" and "bare tape" in stacks
    tape_floor.check_gradients(workload, stacks)


def test_the_check_refuses_a_wrong_gradient(tape_floor):
    stacks = tape_floor.stacks_for("mlp")
    init, step = stacks["bare tape"]

    def off_by_a_little(p, batch):
        p, loss, grads = step(p, batch)
        return p, loss, {**grads, "fc1.b": grads["fc1.b"] * (1 + 1e-6)}

    with pytest.raises(AssertionError, match="bare tape: fc1.b"):
        tape_floor.check_gradients("mlp", {"numpy (hand-written)": stacks["numpy (hand-written)"],
                                           "bare tape": (init, off_by_a_little)})
