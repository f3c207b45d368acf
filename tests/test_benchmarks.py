"""The benchmarks' own measuring tools (benchmarks/__main__.py): what they count and how they time.
No timing is asserted here; the baselines' equality with captionlib is tested in test_fused.py and test_beam.py."""
import torch

from benchmarks.__main__ import clocked, flop_count


def test_the_flop_count_sees_in_place_and_matrix_vector_products():
    """torch's FlopCounterMode alone misses addmm_ (the fused paths' gates) and matrix-vector products."""
    a, b, v = torch.randn(6, 5), torch.randn(5, 4), torch.randn(5)
    assert flop_count(lambda: torch.zeros(6, 4).addmm_(a, b)) == flop_count(lambda: a @ b) == 2 * 6 * 5 * 4
    assert flop_count(lambda: torch.zeros(2, 6, 4).baddbmm_(a.expand(2, 6, 5), b.expand(2, 5, 4))) == 2 * 2 * 6 * 5 * 4
    assert flop_count(lambda: a @ v) == flop_count(lambda: torch.zeros(6).addmv_(a, v)) == 2 * 6 * 5


def test_timings_are_interleaved_a_round_at_a_time():
    """A machine that changes speed mid-run must slow baseline and captionlib alike: the calls alternate,
    the slow ones stop after their own count, and each result is the first timed call's."""
    calls = []

    def recorder(name):
        return lambda: calls.append(name) or len(calls)

    out = clocked({"a": recorder("a"), "b": recorder("b"), "c": recorder("c")}, {"a": 3, "b": 3, "c": 1})
    assert calls == ["a", "b", "c"] + ["a", "b", "c", "a", "b", "a", "b"]          # warm-up, then rounds
    assert {name: result for name, (_, result) in out.items()} == {"a": 4, "b": 5, "c": 6}
    assert all(seconds >= 0 for seconds, _ in out.values())
    calls.clear()
    clocked({"a": recorder("a"), "b": recorder("b")}, 2, warm_up=False)
    assert calls == ["a", "b", "a", "b"]
