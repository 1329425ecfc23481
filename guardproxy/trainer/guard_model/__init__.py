"""A small guard model in Llama Guard 3's protocol, fine-tuned from a chat model that ships as a GGUF file.

`base_model` turns the GGUF into a (pruned) transformers model, `train` fine-tunes it on Llama Guard prompts
sharing one prompt prefix per batch, `gguf_export` writes the result back to a GGUF that llama.cpp serves.
"""
