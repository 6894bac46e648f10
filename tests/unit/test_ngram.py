import math

import pytest

from helpers import ngram

TEXT = "the cat sat on the mat. the hat is on the cat.\n" * 3


def test_counts():
    counts = ngram.count_ngrams("abab", 2)
    assert counts == {"ab": 2, "ba": 1}


def test_every_context_gives_a_distribution():
    model = ngram.KneserNey(TEXT, order=4, vocab_size=30)
    alphabet = sorted(set(TEXT)) + [chr(0x4E00 + k) for k in range(30 - len(set(TEXT)))]
    for history in ("the", "zzz", "", "t", " ca"):
        probs = [model.prob(c, history) for c in alphabet]
        assert math.isclose(sum(probs), 1.0, rel_tol=1e-12) and min(probs) > 0


def test_by_hand_bigram():
    # order 2 on "abab": P(b | a) = (c(ab) - d)/c(a•) + d·N1+(a•)/c(a•)·P1(b)
    model = ngram.KneserNey("abab", order=2, vocab_size=2, discount=0.5)
    # continuation counts: N1+(•a) = 1 ("ba"), N1+(•b) = 1 ("ab"); total 2
    p1_b = (1 - 0.5) / 2 + 0.5 * 2 / 2 * 0.5
    assert math.isclose(model.prob("b", "a"), (2 - 0.5) / 2 + 0.5 * 1 / 2 * p1_b)


def test_blocks_reset_the_history():
    model = ngram.KneserNey(TEXT, order=3, vocab_size=20)
    text = TEXT[:40]
    whole = model.cross_entropy(text)
    one_block = model.cross_entropy(text, block=len(text))
    assert math.isclose(whole, one_block)
    # blocks of one character: every prediction from one character of history
    bigram_like = -sum(math.log(model.prob(text[i], text[i - 1])) for i in range(1, len(text))) / (len(text) - 1)
    assert math.isclose(model.cross_entropy(text, block=1), bigram_like)


def test_bad_arguments():
    for kwargs in (dict(order=0), dict(order=2.0), dict(discount=1.0)):
        with pytest.raises(ValueError):
            ngram.KneserNey(TEXT, **kwargs)
    with pytest.raises(ValueError, match="smaller than"):
        ngram.KneserNey(TEXT, vocab_size=3)
    model = ngram.KneserNey(TEXT, order=2)
    with pytest.raises(ValueError, match="block"):
        model.cross_entropy(TEXT, block=0)
    with pytest.raises(ValueError, match="at least 2"):
        model.cross_entropy("a")


def test_cross_entropy_takes_any_model_with_order_and_prob():
    class Uniform:
        order = 3

        def prob(self, token, history):
            assert len(history) <= 2, "at most order - 1 characters of history"
            return 1 / 4

    assert math.isclose(ngram.cross_entropy(Uniform(), "abcdabcd"), math.log(4))
    assert math.isclose(ngram.cross_entropy(Uniform(), "abcdabcd", block=3), math.log(4))
