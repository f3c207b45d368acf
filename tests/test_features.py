
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from captionlib.encoder import Encoder
from captionlib.features import FeatureStore, cache_key, extract_features
from captionlib.images import ImageLoadError


class Images:
    """Solid-colour images; optionally one unreadable, optionally interrupting at an index."""

    def __init__(self, n, bad=(), stop_at=None):
        self.n, self.bad, self.stop_at, self.calls = n, set(bad), stop_at, 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls += 1
        if i == self.stop_at:
            raise KeyboardInterrupt  # the learner pressed stop
        if i in self.bad:
            raise ImageLoadError(f"img{i}.jpg: the file is corrupt")
        return Image.new("RGB", (16, 16), (i * 20 % 256, 50, 100))


def tiny_encoder():
    torch.manual_seed(0)
    return Encoder(nn.Conv2d(3, 4, 4, stride=4), dim=4, grid=2, image_size=16)


def test_extract_then_reuse_without_recomputing(tmp_path):
    imgs, enc = Images(10), tiny_encoder()
    store = extract_features(enc, imgs, "k", tmp_path, batch_size=4, progress=False)
    assert store.shape == (10, 4, 4) and store.features.dtype == np.float16 and store.done.all()
    with torch.no_grad():
        direct, _ = enc(enc.preprocess(imgs[3]))
    assert np.allclose(store[3], direct[0].numpy(), atol=1e-2)
    imgs.calls = 0
    again = extract_features(enc, imgs, "k", tmp_path, progress=False)
    assert imgs.calls == 0 and np.array_equal(again[7], store[7])
    assert isinstance(again.features._rows, np.memmap)   # memory-mapped, not loaded


def test_key_changes_with_anything_that_changes_the_numbers():
    base = cache_key("data-v1", "efficientnet-lite0", 7, 224)
    assert cache_key("data-v2", "efficientnet-lite0", 7, 224) != base
    assert cache_key("data-v1", "resnet50", 7, 224) != base
    assert cache_key("data-v1", "efficientnet-lite0", 14, 224) != base
    assert cache_key("data-v1", "efficientnet-lite0", 7, 256) != base
    assert cache_key("data-v1", "efficientnet-lite0", 7, 224) == base


def test_interrupted_extraction_resumes_and_matches_an_uninterrupted_one(tmp_path):
    enc = tiny_encoder()
    with pytest.raises(KeyboardInterrupt):
        extract_features(enc, Images(10, stop_at=6), "k", tmp_path / "a", batch_size=3, progress=False)
    partial = FeatureStore(tmp_path / "a" / "k")
    assert partial.done.tolist() == [True] * 6 + [False] * 4  # two full batches were saved
    resumed = Images(10)
    store = extract_features(enc, resumed, "k", tmp_path / "a", batch_size=3, progress=False)
    assert resumed.calls == 4 and store.done.all()
    full = extract_features(enc, Images(10), "k", tmp_path / "b", batch_size=3, progress=False)
    assert np.array_equal(np.asarray(store.features), np.asarray(full.features))


def test_prefix_extraction(tmp_path):
    imgs = Images(10)
    store = extract_features(tiny_encoder(), imgs, "k", tmp_path, upto=4, progress=False)
    assert store.done.sum() == 4 and store.valid().tolist() == [0, 1, 2, 3]


def test_bad_images_are_skipped_with_a_warning_not_silently(tmp_path):
    with pytest.warns(UserWarning, match="img2.jpg"):
        store = extract_features(tiny_encoder(), Images(5, bad=[2]), "k", tmp_path, progress=False)
    assert 2 in store.bad and store.valid().tolist() == [0, 1, 3, 4]


def test_dataset_size_change_is_an_error(tmp_path):
    extract_features(tiny_encoder(), Images(5), "k", tmp_path, progress=False)
    with pytest.raises(ValueError, match="delete the folder"):
        extract_features(tiny_encoder(), Images(6), "k", tmp_path, progress=False)


def test_decoding_workers_give_the_same_cache_and_report_bad_images(tmp_path):
    """With DataLoader workers decoding, the features, the bad list and the done marks are those of the
    single-process run."""
    enc = tiny_encoder()
    with pytest.warns(UserWarning, match="img5.jpg"):
        one = extract_features(enc, Images(12, bad=[5]), "k", tmp_path / "a", batch_size=4, progress=False, workers=0)
    with pytest.warns(UserWarning, match="img5.jpg"):
        two = extract_features(enc, Images(12, bad=[5]), "k", tmp_path / "b", batch_size=4, progress=False, workers=2)
    assert np.array_equal(np.asarray(one.features), np.asarray(two.features))
    assert two.bad == one.bad and 5 in two.bad and two.done.all()


def test_progress_files_are_written_every_few_seconds_not_every_batch(tmp_path, monkeypatch):
    import captionlib.features as features

    writes = []
    real = features.atomic_write
    monkeypatch.setattr(features, "atomic_write", lambda path, fn: writes.append(path.name) or real(path, fn))
    extract_features(tiny_encoder(), Images(40), "k", tmp_path, batch_size=2, progress=False, workers=0, commit_every=3600)
    layout = ["done.npy", "bad.json", "blocks.json", "meta.json"]      # the empty cache, laid out once
    assert writes == layout + ["bad.json", "blocks.json", "done.npy"]  # 20 batches, one commit at the end


def test_default_workers_leave_small_jobs_in_process():
    from captionlib.features import default_workers

    assert default_workers(10) == 0 and 1 <= default_workers(10_000) <= 4
