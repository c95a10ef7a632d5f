"""count_dispatches: operators called from Python or by autograd, and host synchronisations."""

import torch

from mrcnn.benchmark import count_dispatches

CPU = torch.device("cpu")


def test_counts_outermost_operators_forward_and_backward():
    x = torch.randn(4, 3, requires_grad=True)
    weight = torch.ones(2, 3)

    def run():
        y = torch.nn.functional.linear(x, weight)  # one operator (its addmm/mm run inside it)
        y.sum().backward()

    report = count_dispatches(run, CPU)
    names = dict(report["most_dispatched"])
    assert names["aten::linear"] == 1
    # the forward's matmul runs inside aten::linear; the one mm counted is the backward's (grad of x)
    assert names["aten::mm"] == 1
    assert not any(name.startswith(("autograd::", "torch::")) for name in names)
    constant = x.detach()
    forward_only = count_dispatches(lambda: torch.nn.functional.linear(constant, weight), CPU)
    assert forward_only["operators"] == 1
    assert report["operators"] > forward_only["operators"] + 1  # sum and the backward's operators
    assert report["host_syncs"] == 0


def test_counts_each_synchronisation_once():
    values = torch.tensor([0.0, 2.0, 0.0, 3.0])

    def run():
        float(values.sum())  # item -> _local_scalar_dense
        values.nonzero()
        values[values > 1]  # boolean-mask indexing: a nonzero inside index
        torch.unique(values)

    report = count_dispatches(run, CPU)
    assert report["host_syncs"] == 4, report["host_syncs_by_operator"]
    assert report["host_syncs_by_operator"]["aten::nonzero"] == 2
    assert report["host_syncs_by_operator"]["aten::_local_scalar_dense"] == 1
    assert count_dispatches(lambda: values + 1, CPU)["host_syncs"] == 0


def test_reports_the_operators_inside_mrcnn_regions():
    values = torch.arange(6.0)

    def run():
        values * 2
        with torch.profiler.record_function("mrcnn::example_kernel"):
            values + 1
            values.sum()

    report = count_dispatches(run, CPU)
    assert report["operators"] == 3  # the label itself is not an operator
    assert report["operators_in_regions"] == {"mrcnn::example_kernel": 2}
    assert report["region_calls"] == {"mrcnn::example_kernel": 1}
    assert report["operators_regions_as_one"] == 2


def test_counts_each_call_of_a_region_and_not_regions_inside_it():
    values = torch.arange(6.0)

    def kernel():
        with torch.profiler.record_function("mrcnn::example_kernel"):
            values + 1
            with torch.profiler.record_function("mrcnn::inner_part"):
                values * 3
                values - 1

    def run():
        kernel()
        kernel()
        values.sum()

    report = count_dispatches(run, CPU)
    assert report["operators"] == 7
    assert report["region_calls"] == {"mrcnn::example_kernel": 2}
    assert report["operators_regions_as_one"] == 3
