"""Tiny random-weight models for the local-backend tests, built in well under a second.

`write_tiny_gguf` writes a 2-layer Llama GGUF with a SentencePiece-style vocabulary and a ChatML chat
template; `write_tiny_transformers` saves a 2-layer `LlamaForCausalLM` with a byte-level BPE tokenizer
trained here. Both are real models their libraries load and run; only the weights are random.

The GGUF's output matrix is zero for every token except the words in `WORDS`, so greedy decoding only
ever emits those words (never end-of-sequence): answers are deterministic word salad that always runs
to `max_tokens`, which is what the stop-sequence, disconnect and blocklist tests need.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_WORD_TEXT = (
    "the of and to in is it you that he was for on are with as his they be at one have this from "
    "or had by word but what some we can out other were all there when up use your how said an each "
    "she which do their time if will way about many then them write would like so these her long make "
    "thing see him two has look more day could go come did number sound no most people my over know"
)
WORDS = tuple(_WORD_TEXT.split())
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_SPECIALS = ("<|im_start|>", "<|im_end|>")
LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
_HIDDEN, _FFN, _HEADS, _LAYERS, _CTX = 64, 128, 4, 2, 2048


def write_tiny_gguf(
    path: Path, *, seed: int = 0, specials: tuple[str, ...] = CHATML_SPECIALS, pieces: tuple[str, ...] = ()
) -> Path:
    """A loadable llama.cpp model file (~0.5 MB) at `path`, with `specials` as control tokens of its
    vocabulary (ChatML's by default; `LLAMA3_SPECIALS` for a Llama 3 chat vocabulary) and extra whole-word
    `pieces` (e.g. "▁safe", so that a word is one token rather than "▁" + letters), which it may also emit."""
    import gguf

    tokens, scores, types = _spm_vocab(specials, pieces)
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("guardproxy-tiny-test")
    writer.add_context_length(_CTX)
    writer.add_embedding_length(_HIDDEN)
    writer.add_block_count(_LAYERS)
    writer.add_feed_forward_length(_FFN)
    writer.add_head_count(_HEADS)
    writer.add_head_count_kv(_HEADS)
    writer.add_rope_dimension_count(_HIDDEN // _HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHATML)

    def tensor(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    vocab = len(tokens)
    writer.add_tensor("token_embd.weight", tensor(vocab, _HIDDEN, scale=1.0))
    writer.add_tensor("output_norm.weight", np.ones(_HIDDEN, dtype=np.float32))
    output = np.zeros((vocab, _HIDDEN), dtype=np.float32)
    word_rows = [i for i, t in enumerate(tokens) if (t.startswith("▁") and t[1:] in WORDS) or t in pieces]
    output[word_rows] = tensor(len(word_rows), _HIDDEN, scale=1.0)
    writer.add_tensor("output.weight", output)
    for block in range(_LAYERS):
        prefix = f"blk.{block}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(_HIDDEN, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(_HIDDEN, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(prefix + name + ".weight", tensor(_HIDDEN, _HIDDEN))
        writer.add_tensor(prefix + "ffn_gate.weight", tensor(_FFN, _HIDDEN))
        writer.add_tensor(prefix + "ffn_up.weight", tensor(_FFN, _HIDDEN))
        writer.add_tensor(prefix + "ffn_down.weight", tensor(_HIDDEN, _FFN))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _spm_vocab(specials: tuple[str, ...], extra: tuple[str, ...]) -> tuple[list[str], list[float], list[int]]:
    import gguf

    normal, control = int(gguf.TokenType.NORMAL), int(gguf.TokenType.CONTROL)
    tokens = ["<unk>", "<s>", "</s>", *specials]
    types = [int(gguf.TokenType.UNKNOWN), control, control, *(control for _ in specials)]
    scores = [0.0] * len(tokens)
    # Byte fallback: any text tokenizes, whatever characters a test prompt uses.
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        types.append(int(gguf.TokenType.BYTE))
        scores.append(0.0)
    pieces = ["▁", *"abcdefghijklmnopqrstuvwxyz.,!?'", *(f"▁{w}" for w in WORDS), *extra]
    for rank, piece in enumerate(pieces):
        tokens.append(piece)
        types.append(normal)
        # SentencePiece merges prefer higher scores: whole words beat letter-by-letter.
        scores.append(-100.0 + rank if len(piece) > 1 else -1000.0)
    return tokens, scores, types


def write_tiny_transformers(directory: Path, *, seed: int = 0) -> Path:
    """A `LlamaForCausalLM` + tokenizer + chat template saved with `save_pretrained` into `directory`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [" ".join(WORDS[i : i + 9]) + "." for i in range(0, len(WORDS), 3)] * 4
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", bos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=_HIDDEN,
        intermediate_size=_FFN,
        num_hidden_layers=_LAYERS,
        num_attention_heads=_HEADS,
        num_key_value_heads=_HEADS,
        max_position_embeddings=_CTX,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    torch.nn.init.normal_(model.lm_head.weight, std=1.0)
    with torch.no_grad():
        # Only whole words, never end-of-sequence: answers always run to max_tokens, as with the tiny GGUF.
        words = {"Ġ" + w for w in WORDS}
        for token, token_id in tokenizer.get_vocab().items():
            if token not in words:
                model.lm_head.weight[token_id].zero_()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
