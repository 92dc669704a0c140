"""The conditional world foundation model (WFM): a transformer over tokenizer latents with two
heads, `grade` (the default: an appearance transform of the source pixels) and `flow` (a
diffusion model of the target latents). docs/WFM.md says which does what and why.

- `config`: `WFMConfig` and the named sizes (`wfm-grade`, `wfm-small`, tiny ones for tests);
- `controls`: structure controls (edges, blur, layout raster, depth) as numpy functions;
- `model`: the trunk (adaLN-zero conditions, 3D rotary positions, frame-causal attention);
- `appearance`: the grade head's transform (bilateral colour grid + weather layer) and the
  precipitation drawn over it;
- `fit`: the grade model's plain-PyTorch training (`amplify train grade`); its bank comes from
  `fit.build_bank` (decoded clips) or `renders.bank_from_renders` (rendered in memory, GPU runs);
- `flow`: the rectified-flow objective; `sampler`: few-step chunked ODE sampling with CFG;
- `data`: paired twins of the synthetic corpus and real windows, pre-encoded;
  `checkpoint`: safetensors by name;
- `generate`: `Generator`, the one generation path (job, training evaluation, eval wfm/real).
"""
