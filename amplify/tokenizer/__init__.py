"""Video tokenizer: a causal 4x8x8 spatio-temporal autoencoder (continuous or FSQ tokens).

- `config.py`: `TokenizerConfig`, `TOKENIZER_CONFIGS` ("tok-tiny", "tok-small", "-fsq" variants).
- `model.py`: `CausalVideoTokenizer` (`encode`, `decode`, `encode_ids`, `decode_ids`, tiles).
- `checkpoint.py`: `load_tokenizer("tok-small")` (the committed default), `save_tokenizer`.
- `losses.py`, `data.py`: reconstruction losses and metrics; clips through ingest.
- `evaluate.py`: `evaluate(TokenizerEvalConfig)` (`amplify eval tokenizer`); `bench.py`: speed.
Training lives in `pipelines/train_tokenizer.py` (Ray Train). Nothing is imported here, so the
CLI's `--help` stays instant.
"""
