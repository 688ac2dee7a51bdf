"""The offline CLIP tokenizer lives in the core (the CLI uses it too)."""

from lib_vidsd.pipelines.tokenizer import (
    BOS,
    EOS,
    MAX_LENGTH,
    WORDS,
    build_tokenizer,
    clip_vocab,
    write_tokenizer_files,
)

__all__ = ["BOS", "EOS", "MAX_LENGTH", "WORDS", "build_tokenizer", "clip_vocab", "write_tokenizer_files"]
