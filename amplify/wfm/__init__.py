"""The conditional world foundation model (WFM): a diffusion transformer over tokenizer latents.

- `config`: `WFMConfig` and the named sizes (`wfm-tiny`, `wfm-small`, `wfm-base`);
- `controls`: structure controls (edges, blur, layout raster, depth) as numpy functions;
- `model`: the DiT (adaLN-zero conditions, 3D rotary positions, frame-causal attention);
- `flow`: the rectified-flow objective; `sampler`: few-step chunked ODE sampling with CFG;
- `data`: paired twins of the synthetic corpus, pre-encoded; `checkpoint`: safetensors by name;
- `generate`: `Generator`, the API a job calls (frames + condition -> variation).
"""
