import pytest
import torch

from captionlib.vocab import SPECIALS, Vocab, pad_captions, tokenize


def test_tokenize_lowercases_and_strips_punctuation():
    assert tokenize("A small, RED circle.") == ["a", "small", "red", "circle"]
    assert tokenize("  two  green\ttriangles!! ") == ["two", "green", "triangles"]
    assert tokenize("") == [] and tokenize("...") == []


def test_tokenize_rejects_non_strings_clearly():
    with pytest.raises(TypeError, match="must be a string"):
        tokenize(None)


def test_build_keeps_specials_first_and_applies_min_freq():
    v = Vocab.build(["a red circle", "a blue circle", "a red square"], min_freq=2)
    assert v.idx_to_word[:4] == list(SPECIALS)
    assert v.idx_to_word[4:] == ["a", "circle", "red"]  # counts 3, 2, 2: most frequent first, ties a-z
    assert (v.pad_idx, v.start_idx, v.end_idx, v.unk_idx) == (0, 1, 2, 3)


def test_encode_decode_round_trip_and_unknown_words():
    v = Vocab.build(["a red circle above a blue square"])
    ids = v.encode("A red circle above a BLUE square.")
    assert ids[0] == v.start_idx and ids[-1] == v.end_idx
    assert v.decode(ids) == "a red circle above a blue square"
    unk = v.encode("a zebra")
    assert unk[2] == v.unk_idx and v.decode(unk) == "a <unk>"
    assert v.encode("") == [v.start_idx, v.end_idx]


def test_decode_stops_at_end_and_skips_padding():
    v = Vocab.build(["a red circle"])
    ids = v.encode("a red circle") + [v.pad_idx, v.word_to_idx["red"]]
    assert v.decode(ids) == "a red circle"
    assert v.decode([v.start_idx, 10_000]) == "<unk>"  # out-of-range index never crashes


def test_max_len_truncates_words_not_specials():
    v = Vocab.build(["a b c d e"], max_len=3)
    ids = v.encode("a b c d e")
    assert len(ids) == 5 and ids[-1] == v.end_idx


def test_state_dict_round_trip_survives_weights_only_load(tmp_path):
    v = Vocab.build(["a red circle", "two blue squares"], max_len=20)
    torch.save({"vocab": v.state_dict()}, tmp_path / "v.pt")
    w = Vocab.from_state_dict(torch.load(tmp_path / "v.pt", weights_only=True)["vocab"])
    assert w.idx_to_word == v.idx_to_word and w.max_len == 20
    with pytest.raises(ValueError, match="not a captionlib vocabulary"):
        Vocab.from_state_dict({"idx_to_word": ["a", "b", "c", "d"]})


def test_pad_captions_shapes_and_lengths():
    captions, lengths = pad_captions([[1, 5, 2], [1, 2], [1, 5, 6, 7, 2]])
    assert captions.shape == (3, 5) and lengths.tolist() == [3, 2, 5]
    assert captions[1].tolist() == [1, 2, 0, 0, 0]
    with pytest.raises(ValueError):
        pad_captions([])
