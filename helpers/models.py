"""Models that more than one chapter uses.

Each is taught in its chapter and lives here because a later chapter reuses it:

* :func:`char_rnn`: the character language model of chapter 6 (embedding,
  a recurrent layer, logits), trained with gated cells in chapter 7 and
  compared with the GPT in chapter 9;
* :class:`DecoderBlock`: the pre-LayerNorm Transformer block of chapter 8
  (with ``causal=False``, the encoder block of chapter 9's masked model);
* :class:`GPTConfig` and :func:`gpt`: the small GPT of chapter 9, reused
  by the chapters after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from helpers import device  # noqa: F401  (imports TensorFlow quietly, before keras)

import keras  # noqa: E402


def char_rnn(recurrent_layer, vocab_size: int, embedding_dim: int = 32):
    """Embedding → recurrent layer → V h_t + c (chapter 6).

    ``recurrent_layer`` must return the whole sequence
    (``return_sequences=True``): a language model predicts the next
    character at every position.  Outputs logits; the softmax is applied
    inside the loss (``from_logits=True``).
    """
    return keras.Sequential(
        [
            # (batch, time) character ids
            keras.Input((None,), dtype="int32"),
            # (batch, time, embedding_dim): the vectors x_t
            keras.layers.Embedding(vocab_size, embedding_dim),
            # (batch, time, units): h_1 … h_T
            recurrent_layer,
            # (batch, time, vocab): V h_t + c, kept in float32 for the loss
            keras.layers.Dense(vocab_size, dtype="float32"),
        ]
    )


@keras.saving.register_keras_serializable(package="llm_book")
class DecoderBlock(keras.layers.Layer):
    """One pre-LayerNorm decoder block, as in GPT-2 (chapter 8).

    x ← x + Attention(LN(x)) with a causal mask, then x ← x + MLP(LN(x)),
    where the MLP widens to ``mlp_ratio × width`` with a GELU.  With
    ``causal=False`` every position attends to every other: the block of a
    bidirectional encoder such as BERT (chapter 9).  Parameters
    with the default ``mlp_ratio=4``: 12·width² + 13·width (attention 4w² + 4w,
    MLP 8w² + 5w, two LayerNorms 4w).
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0, causal: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
        self.width, self.heads, self.mlp_ratio, self.dropout_rate = width, heads, mlp_ratio, dropout
        self.causal = bool(causal)
        self.norm_1 = keras.layers.LayerNormalization(epsilon=1e-5)
        self.attention = keras.layers.MultiHeadAttention(heads, key_dim=width // heads, dropout=dropout)
        self.norm_2 = keras.layers.LayerNormalization(epsilon=1e-5)
        self.mlp_in = keras.layers.Dense(mlp_ratio * width, activation="gelu")
        self.mlp_out = keras.layers.Dense(width)
        self.drop = keras.layers.Dropout(dropout)

    def build(self, input_shape):  # (batch, time, width)
        self.norm_1.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.norm_2.build(input_shape)
        self.mlp_in.build(input_shape)
        self.mlp_out.build((*input_shape[:-1], self.mlp_ratio * self.width))

    def call(self, x, training=False):  # x: (batch, time, width)
        h = self.norm_1(x)
        x = x + self.drop(self.attention(h, h, use_causal_mask=self.causal, training=training), training=training)
        h = self.norm_2(x)
        return x + self.drop(self.mlp_out(self.mlp_in(h)), training=training)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "heads": self.heads,
                "mlp_ratio": self.mlp_ratio, "dropout": self.dropout_rate, "causal": self.causal}


@keras.saving.register_keras_serializable(package="llm_book")
class TokenAndPosition(keras.layers.Layer):
    """Token embedding plus a learned embedding of each position (as in GPT-2)."""

    def __init__(self, vocab_size: int, context: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.context, self.width = vocab_size, context, width
        self.tokens = keras.layers.Embedding(vocab_size, width)
        self.positions = keras.layers.Embedding(context, width)

    def build(self, input_shape):  # (batch, time)
        self.tokens.build(input_shape)
        self.positions.build((None,))

    def call(self, ids):  # (batch, time) → (batch, time, width)
        positions = keras.ops.arange(keras.ops.shape(ids)[1])  # (time,)
        return self.tokens(ids) + self.positions(positions)[None]

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "context": self.context, "width": self.width}


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a small GPT (chapter 9)."""

    vocab_size: int  # tokens the model reads and predicts
    context: int = 128  # longest sequence it can read, in tokens
    layers: int = 2  # decoder blocks
    heads: int = 4  # attention heads per block
    width: int = 128  # d_model: the size of every token's vector
    mlp_ratio: int = 4  # the MLP widens to mlp_ratio × width
    dropout: float = 0.0  # on attention weights and residual branches

    def __post_init__(self):
        for name in ("vocab_size", "context", "layers", "heads", "width", "mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be a multiple of heads ({self.heads})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def parameters(self) -> int:
        """The count :func:`gpt` builds: embeddings, blocks, final norm, output layer."""
        w, v = self.width, self.vocab_size
        return v * w + self.context * w + self.layers * (12 * w * w + 13 * w) + 2 * w + w * v + v


def gpt(config: GPTConfig):
    """A decoder-only Transformer: ids (batch, time) → next-token logits (batch, time, vocab).

    Token and learned position embeddings, ``config.layers`` :class:`DecoderBlock`\\ s,
    a final LayerNorm and an output layer kept in float32 for the loss.
    """
    ids = keras.Input((None,), dtype="int32")  # (batch, time)
    x = TokenAndPosition(config.vocab_size, config.context, config.width)(ids)  # (batch, time, width)
    for _ in range(config.layers):
        x = DecoderBlock(config.width, config.heads, config.mlp_ratio, config.dropout)(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5)(x)
    logits = keras.layers.Dense(config.vocab_size, dtype="float32")(x)  # (batch, time, vocab)
    return keras.Model(ids, logits, name="gpt")
