import numpy as np
import pytest

from helpers import data, sample


def test_softmax_with_temperature():
    z = np.array([1.0, 2.0, 3.0])
    p = sample.softmax_with_temperature(z, 1.0)
    assert np.isclose(p.sum(), 1.0) and np.allclose(p, np.exp(z) / np.exp(z).sum())
    assert np.array_equal(sample.softmax_with_temperature(z, 0), [0.0, 0.0, 1.0])
    entropy = [-(q * np.log(q)).sum() for q in (sample.softmax_with_temperature(z, t) for t in (0.5, 1, 2))]
    assert entropy[0] < entropy[1] < entropy[2]
    assert np.isfinite(sample.softmax_with_temperature([1000.0, 0.0], 0.01)).all()


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "hot", None, True])
def test_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature must be a number"):
        sample.softmax_with_temperature([0.0, 1.0], bad)


def test_sample_is_seeded_and_continues_the_prompt(text, tiny_lm):
    vocab = data.CharVocab.from_text(text)
    model = tiny_lm(vocab.size)
    a = sample.sample(model, vocab, "to be", 30, seed=3)
    b = sample.sample(model, vocab, "to be", 30, seed=3)
    assert a == b and a.startswith("to be") and len(a) == 35
    greedy = {sample.sample(model, vocab, "to", 20, temperature=0, seed=s) for s in (1, 2)}
    assert len(greedy) == 1
    assert len(sample.sample(model, vocab, "t" * 50, 5, context=8)) == 55


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt=""), "prompt must be a non-empty string"),
        (dict(prompt=3), "prompt must be a non-empty string"),
        (dict(length=0), "length must be an integer"),
        (dict(context=-2), "context must be an integer"),
        (dict(temperature=-0.5), "temperature"),
        (dict(prompt="XYZ"), "not in the vocabulary"),
    ],
)
def test_sample_rejects_bad_input(text, tiny_lm, kwargs, message):
    vocab = data.CharVocab.from_text(text)
    args = dict(prompt="to", length=5) | kwargs
    with pytest.raises(ValueError, match=message):
        sample.sample(tiny_lm(vocab.size), vocab, **args)


def test_a_constraint_fixes_the_form_whatever_the_model_prefers(text, tiny_lm):
    vocab = data.CharVocab.from_text(text)
    model = tiny_lm(vocab.size)
    vowels = np.array([c in "aeiou" for c in vocab.chars])
    spaces = np.array([c == " " for c in vocab.chars])

    def every_third_a_space(so_far):  # "xx xx xx …": two vowels, then a space
        return spaces if len(so_far) % 3 == 2 else vowels

    out = sample.sample(model, vocab, "to", 30, seed=1, allowed=every_third_a_space)[2:]
    assert all(c == " " if i % 3 == 2 else c in "aeiou" for i, c in enumerate(out)), out
    greedy = sample.sample(model, vocab, "to", 9, temperature=0, allowed=every_third_a_space)[2:]
    assert all(c == " " if i % 3 == 2 else c in "aeiou" for i, c in enumerate(greedy))
    free = sample.sample(model, vocab, "to", 9, temperature=0, allowed=lambda so_far: None)
    assert free == sample.sample(model, vocab, "to", 9, temperature=0), "None: no constraint"
    for bad in (lambda s: np.zeros(vocab.size, bool), lambda s: np.ones(3, bool)):
        with pytest.raises(ValueError, match="non-empty mask"):
            sample.sample(model, vocab, "to", 3, allowed=bad)
