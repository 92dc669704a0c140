"""Training on a lent GPU machine that has torch but no Ray, MLflow, Hydra or PyAV.

Two commands (checkpoints/README.md, "GPU training"):
1. `python -m amplify.gpu.prepare out=DIR` (here, on CPU, with PyAV): decode the training clips
   into one compact bundle (`bundle.py`) small enough to travel with the run.
2. `python -m amplify.gpu.train data=DIR out=$OUT` (there): train the tokenizer with the same step
   as `pipelines/train_tokenizer.py` within a wall-clock budget, write fp16 safetensors + JSON to
   OUT, then (hook) the world model through `amplify.wfm.fit` when its bank is in DIR.
"""
