"""The interpolated Kneser–Ney character n-gram model (taught in chapter 3).

Chapter 3 derives it; chapter 9 reuses it as the strongest count-based row
of its held-out table, on the same split and under the same protocol as the
neural models (see :func:`cross_entropy`, which chapter 3 also uses for its
other smoothing methods).

For orders k = 1 … n, with c the real counts at the highest order and the
continuation counts N₁₊(• g) (how many distinct characters precede g) below
it, and one absolute discount d:

    P_k(w | h) = max(c(h w) − d, 0) / c(h •) + d · N₁₊(h •) / c(h •) · P_{k−1}(w | h′)

where h′ drops the oldest character of h, P_0 = 1/V is uniform, and a
context never seen in training keeps the lower-order estimate.
"""

from __future__ import annotations

import math
from collections import Counter


def count_ngrams(text: str, n: int) -> Counter:
    """C(g) for every n-character string g of ``text``."""
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def _by_context(counter: Counter) -> tuple[Counter, Counter]:
    """Per context h (a gram without its last character): Σ_w c(h w) and N₁₊(h •)."""
    total, kinds = Counter(), Counter()
    for gram, c in counter.items():
        total[gram[:-1]] += c
        kinds[gram[:-1]] += 1
    return total, kinds


class KneserNey:
    """Interpolated Kneser–Ney of order ``order`` over a ``vocab_size``-character alphabet."""

    def __init__(self, text: str, order: int = 5, vocab_size: int | None = None, discount: float = 0.75):
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be an integer ≥ 1, got {order!r}")
        if not 0 < discount < 1:
            raise ValueError(f"discount must be in (0, 1), got {discount!r}")
        if len(text) < order:
            raise ValueError(f"the text has {len(text)} characters, fewer than the order {order}")
        self.order, self.discount = order, discount
        self.vocab_size = vocab_size if vocab_size is not None else len(set(text))
        if self.vocab_size < len(set(text)):
            raise ValueError(
                f"vocab_size {self.vocab_size} is smaller than the {len(set(text))} characters of the text"
            )
        # The highest order uses real counts; each lower order k uses
        # continuation counts, one for each distinct (k + 1)-gram ending in g.
        self.counts: dict[int, Counter] = {order: count_ngrams(text, order)}
        for k in range(order - 1, 0, -1):
            self.counts[k] = Counter(gram[1:] for gram in count_ngrams(text, k + 1))
        self.totals = {k: _by_context(c) for k, c in self.counts.items()}

    def prob(self, token: str, history: str) -> float:
        """P(token | the last order − 1 characters of history)."""
        p = 1.0 / self.vocab_size  # order 0: uniform
        d = self.discount
        for k in range(1, self.order + 1):
            h = history[len(history) - (k - 1) :] if k > 1 else ""
            if len(h) < k - 1:  # not enough history for this order
                break
            total, kinds = self.totals[k]
            if total[h]:  # an unseen context keeps the lower-order estimate
                p = max(self.counts[k][h + token] - d, 0) / total[h] + d * kinds[h] / total[h] * p
        return p

    def cross_entropy(self, text: str, block: int | None = None) -> float:
        """Mean −ln P over ``text``, in nats per character (see :func:`cross_entropy`)."""
        return cross_entropy(self, text, block)


def cross_entropy(model, text: str, block: int | None = None) -> float:
    """Mean −ln P over ``text`` of any character model with ``order`` and ``prob(token, history)``.

    Every character after the first is predicted, from at most ``order − 1``
    characters before it; the first is context only.  With ``block`` the
    text is read as the neural models of the book read it
    (:func:`helpers.evaluate.char_loss`): cut into blocks of ``block + 1``
    characters overlapping by one, each block's first character given as
    context only, and no history carried across blocks.  Without it every
    character is predicted from all the text before it.
    """
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
        raise ValueError(f"block must be an integer ≥ 1, got {block!r}")
    if len(text) < 2:
        raise ValueError("text must have at least 2 characters")
    reach = model.order - 1
    total = 0.0
    for i in range(1, len(text)):
        start = 0 if block is None else (i - 1) // block * block  # the block's first character
        history = text[max(start, i - reach) : i]
        total -= math.log(model.prob(text[i], history))
    return total / (len(text) - 1)
