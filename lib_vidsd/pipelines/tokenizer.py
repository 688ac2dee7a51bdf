"""A tiny CLIP BPE vocabulary written by vidsd itself, loaded by ``transformers.CLIPTokenizer``
from local files only (nothing is downloaded).

Layout follows the real CLIP vocabulary: the 256 byte-level symbols, the same with ``</w>`` (end of
word), the merged tokens (learned by BPE on :data:`WORDS`), then ``<|startoftext|>`` and
``<|endoftext|>``. Each word of :data:`WORDS` is a single token; anything else falls back to smaller
pieces, down to single characters, as rare words do in real CLIP.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_LENGTH = 77

WORDS = (
    "a an and at by in of on the with photo painting portrait of cat dog car red blue green "
    "white black man woman girl boy city street forest sea sky night day sunset snow rain "
    "walking running flying dancing smiling masterpiece best quality high detailed blurry "
    "lowres ugly"
).split()


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte-to-printable-character table (every byte gets a visible character)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def clip_vocab(words: tuple[str, ...] | list[str] = WORDS) -> tuple[dict[str, int], list[str]]:
    """``(vocab, merges)``: token → id, and merge rules ``"left right"`` in priority order.

    Merges are learned by plain BPE on ``words`` (most frequent pair first, ties broken by the pair's
    text) until every word is one token; applying them by rank reproduces that segmentation.
    """
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    corpus = [tuple(w[:-1]) + (w[-1] + "</w>",) for w in dict.fromkeys(words)]
    merges: list[str] = []
    while True:
        counts: dict[tuple[str, str], int] = {}
        for word in corpus:
            for pair in zip(word, word[1:], strict=False):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(f"{best[0]} {best[1]}")
        tokens.append(best[0] + best[1])
        corpus = [_merge(word, best) for word in corpus]
    tokens += [BOS, EOS]
    return {token: index for index, token in enumerate(tokens)}, merges


def write_tokenizer_files(directory: str | Path) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocab()
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_LENGTH,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


def build_tokenizer(directory: str | Path | None = None):
    """A ``transformers.CLIPTokenizer`` (max length 77) read from files written by
    :func:`write_tokenizer_files` (into ``directory``, or a temporary folder removed afterwards)."""
    from transformers import CLIPTokenizer

    if directory is not None:
        return CLIPTokenizer.from_pretrained(str(write_tokenizer_files(directory)), local_files_only=True)
    with tempfile.TemporaryDirectory(prefix="vidsd-clip-tok-") as tmp:
        return CLIPTokenizer.from_pretrained(str(write_tokenizer_files(tmp)), local_files_only=True)
