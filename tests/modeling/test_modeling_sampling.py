import torch

from mrcnn.modeling.sampling import subsample_labels


def _labels(num_pos, num_neg, num_ignore):
    labels = torch.cat([torch.ones(num_pos), torch.zeros(num_neg), -torch.ones(num_ignore)]).long()
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]


def test_fraction_is_respected_when_enough_positives():
    labels = _labels(100, 500, 50)
    pos, neg = subsample_labels(labels, 256, 0.25, bg_label=0)
    assert len(pos) == 64 and len(neg) == 192
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == 64 and len(set(neg.tolist())) == 192


def test_few_positives_are_filled_with_negatives():
    labels = _labels(10, 500, 50)
    pos, neg = subsample_labels(labels, 256, 0.5, bg_label=0)
    assert len(pos) == 10 and len(neg) == 246


def test_too_few_of_both_returns_everything_available():
    labels = _labels(3, 7, 20)
    pos, neg = subsample_labels(labels, 256, 0.5, bg_label=0)
    assert sorted(pos.tolist()) == sorted((labels == 1).nonzero().flatten().tolist())
    assert sorted(neg.tolist()) == sorted((labels == 0).nonzero().flatten().tolist())


def test_other_foreground_labels_and_custom_background():
    # RoI-head style: classes 0..2 foreground, 3 background.
    labels = torch.tensor([0, 1, 2, 3, 3, 3, -1, 3])
    pos, neg = subsample_labels(labels, 4, 0.5, bg_label=3)
    assert len(pos) == 2 and len(neg) == 2
    assert set(labels[pos].tolist()) <= {0, 1, 2} and (labels[neg] == 3).all()


def test_seeded_global_rng_is_reproducible():
    labels = _labels(100, 500, 0)
    torch.manual_seed(7)
    first = subsample_labels(labels, 32, 0.5, bg_label=0)
    torch.manual_seed(7)
    second = subsample_labels(labels, 32, 0.5, bg_label=0)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_batched_sampling_draws_what_per_row_sampling_draws():
    """Rows sampled at once give the indices, counts and random-number state of one call per row
    (positives then negatives, row by row); padded rows (-1) and empty rows sample nothing."""
    from mrcnn.modeling.sampling import subsample_labels_batched

    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(-1, 4, (4, 300), generator=generator)
    labels[1, 120:] = -1  # a shorter row, padded
    labels[2] = -1  # nothing to sample
    labels[3, :290] = 3  # almost only background
    for num_samples, fraction, bg_label in [(64, 0.25, 3), (256, 0.5, 0), (1000, 1.0, 3)]:
        torch.manual_seed(11)
        expected = [subsample_labels(row, num_samples, fraction, bg_label) for row in labels]
        state_after_rows = torch.get_rng_state()
        torch.manual_seed(11)
        sampled, num_positive, num_negative = subsample_labels_batched(labels, num_samples, fraction, bg_label)
        assert torch.equal(torch.get_rng_state(), state_after_rows)
        width = labels.shape[1]
        flat = [part + row * width for row, (pos, neg) in enumerate(expected) for part in (pos, neg)]
        assert torch.equal(sampled, torch.cat(flat))
        assert num_positive == [len(pos) for pos, _ in expected]
        assert num_negative == [len(neg) for _, neg in expected]
    assert num_positive[2] == num_negative[2] == 0
