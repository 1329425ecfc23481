"""The one place the in-process Llama Guard engine touches llama-cpp-python, whose API is untyped.

`GgufModel` wraps one `llama_cpp.Llama` context with the few typed operations the engine needs: tokenise
with special tokens, see which tokens the context has evaluated, rewind to a prefix, evaluate more, read the
last position's logits and tell end-of-generation tokens. `Any` stays inside this module.

The context is made with `logits_all=False`: llama-cpp-python 0.3.x then never copies logits into
`Llama.scores` (its `eval` leaves that buffer untouched), so the last position's logits are read from the
context itself (`llama_get_logits_ith(ctx, -1)`), which holds them for the last token of each evaluated batch.

Flash attention is on: it evaluated a 316-token prompt ~15-20% faster on the 2-core AVX2 machine (4-block F16
guard: p50 106 -> 82 ms; v1: 244 -> 198 ms) and moved P(unsafe) by at most 0.035 (mean 0.004) on 31 held-out
guard rows (session 13 probes, interleaved runs).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from guardproxy.backends.local_model import BackendLoadError

FloatArray = npt.NDArray[np.float32]


def _llama_cpp(where: str) -> Any:
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as exc:
        raise BackendLoadError(
            f"{where}: the in-process Llama Guard engine needs llama-cpp-python: "
            f"pip install 'guardproxy[local]' ({exc})"
        ) from exc


class GgufModel:
    """One llama.cpp context over a GGUF file. Not thread-safe: its owner serialises the calls."""

    def __init__(self, llm: Any, lib: Any) -> None:
        self._llm = llm
        self._lib = lib
        self._vocab = lib.llama_model_get_vocab(llm.model)
        self.n_ctx = int(llm.n_ctx())
        self.n_vocab = int(llm.n_vocab())

    @classmethod
    def load(cls, where: str, path: Path, *, n_ctx: int, n_threads: int | None) -> GgufModel:
        """Loads `path` (weights memory-mapped: a second context of the same file costs its KV cache only)."""
        lib = _llama_cpp(where)
        try:
            llm = lib.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                logits_all=False,
                flash_attn=True,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendLoadError(
                f"{where}: {path}: llama.cpp could not load it "
                f"(truncated, corrupt, or an architecture this llama-cpp-python does not know): {exc}"
            ) from exc
        return cls(llm, lib)

    def tokenize(self, text: str) -> list[int]:
        """Special tokens written in `text` (`<|im_start|>`) become their ids; no BOS is added (prompts that
        need one write it)."""
        return [int(t) for t in self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)]

    def detokenize(self, tokens: Sequence[int]) -> str:
        raw: bytes = self._llm.detokenize(list(tokens))
        return raw.decode("utf-8", errors="replace")

    def special_token(self, text: str) -> int | None:
        """The id of `text` when the vocabulary has it as one special token (`<|start_header_id|>`), else None."""
        ids = self.tokenize(text)
        if len(ids) != 1:
            return None
        return ids[0] if self._llm.detokenize(ids, special=True) == text.encode("utf-8") else None

    def evaluated(self) -> list[int]:
        """The tokens whose keys and values the context holds, in order."""
        n: int = self._llm.n_tokens
        return [int(t) for t in self._llm.input_ids[:n]]

    def rewind(self, n_tokens: int) -> None:
        """Keep the first `n_tokens` evaluated tokens; the next `eval` drops the cache entries after them."""
        self._llm.n_tokens = n_tokens

    def eval(self, tokens: Sequence[int]) -> None:
        """Evaluates `tokens` after the kept ones. Raises RuntimeError when llama.cpp's decode fails."""
        self._llm.eval(list(tokens))

    def last_logits(self) -> FloatArray:
        """The logits after the last evaluated token (a copy: the next eval overwrites llama.cpp's buffer)."""
        pointer = self._lib.llama_get_logits_ith(self._llm.ctx, -1)
        return np.array(np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)), dtype=np.float32)

    def is_end(self, token: int) -> bool:
        """End of generation: EOS, `<|eot_id|>`, `<|im_end|>`, as the GGUF's vocabulary marks them."""
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def close(self) -> None:
        self._llm.close()
