"""Text encoder shared by all four reports: open_clip's ``TextTransformer`` (CLIP's text tower).

Tokenisation uses the CLIP byte-pair encoding that open_clip bundles as a file inside the
package (``bpe_simple_vocab_16e6.txt.gz``): it works offline and downloads nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from open_clip.tokenizer import tokenize as _clip_tokenize
from open_clip.transformer import QuickGELU, TextTransformer
from torch import Tensor, nn


def tokenize(texts: str | Sequence[str], context_length: int = 77) -> torch.LongTensor:
    """CLIP BPE tokens ``(N, context_length)``; longer texts are cut, ending with the EOT token."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"tokenize: texts[{i}] must be a str, got {type(t).__name__}")
    return _clip_tokenize(texts, context_length=context_length)


class TextEncoder(nn.Module):
    """CLIP tokens ``(B, context_length)`` (LongTensor) -> ``(B, embed_dim)``.

    Pools at the end-of-text token (the largest id), as CLIP does.
    """

    def __init__(
        self,
        context_length: int,
        vocab_size: int,
        width: int,
        heads: int,
        layers: int,
        embed_dim: int,
        mlp_ratio: float = 4.0,
        quick_gelu: bool = False,
    ) -> None:
        super().__init__()
        self.context_length = context_length
        self.tower = TextTransformer(
            context_length=context_length,
            vocab_size=vocab_size,
            width=width,
            heads=heads,
            layers=layers,
            mlp_ratio=mlp_ratio,
            output_dim=embed_dim,
            act_layer=QuickGELU if quick_gelu else nn.GELU,
        )

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 2 or tokens.shape[1] != self.context_length:
            raise ValueError(
                f"text input must be (B, {self.context_length}) token ids, "
                f"got shape {tuple(tokens.shape)}"
            )
        if tokens.dtype != torch.long:
            raise ValueError(f"text input must be a LongTensor of token ids, got {tokens.dtype}")
        return self.tower(tokens)

    def tokenize(self, texts: str | Sequence[str]) -> torch.LongTensor:
        """Tokenize with this encoder's context length."""
        return tokenize(texts, self.context_length)
