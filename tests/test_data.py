import numpy as np
import pytest
import torch

from captionlib.data import CaptionPairs, CaptionSplit, collate, load_split
from captionlib.vocab import Vocab


def test_shapes_split_loads_and_renders():
    s = load_split("shapes", "val", n_train=10, n_val=6, n_test=4, seed=1)
    assert len(s) == 6 and len(s.captions[0]) == 5 and s.images[2].size == (224, 224)
    assert s.fingerprint != load_split("shapes", "val", n_train=10, n_val=6, n_test=4, seed=2).fingerprint


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="known: .*shapes"):
        load_split("flickr9k")


def test_empty_captions_are_rejected_with_the_image_named():
    with pytest.raises(ValueError, match="'img7.jpg' has no non-empty caption"):
        CaptionSplit("x", "train", ["img7.jpg"], [["", "  ..."]], [None], "f")


def test_pairs_and_collate():
    feats = np.random.rand(3, 4, 5).astype(np.float16)
    captions = [["a red circle", "a circle"], ["two blue boxes"], ["a box", "a big box", ""]]
    vocab = Vocab.build([c for cs in captions for c in cs])
    pairs = CaptionPairs(feats, captions, vocab, indices=[0, 2])
    assert len(pairs) == 4  # the empty caption is skipped
    f, caps, lengths, idx = collate([pairs[k] for k in range(4)])
    assert f.shape == (4, 4, 5) and f.dtype == torch.float32
    assert caps.shape == (4, 5) and lengths.tolist() == [5, 4, 4, 5] and idx.tolist() == [0, 0, 2, 2]
