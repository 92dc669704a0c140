"""Compile the attention kernels for a GPU target without a GPU; report registers, spills, smem.

    python -m kernels.bench.attention_compile                    # every autotune config, sm_90
    python -m kernels.bench.attention_compile --first-only --fail-on-spill

The interpreter runs the kernels' arithmetic but not Triton's compiler, so this is how a CPU
machine catches compile errors (a non-constexpr global, a type mismatch) and register spills: it
builds each kernel with `triton.compile` for the target (ptxas ships with Triton; no driver is
needed) and reads register and stack use from the cubin with the bundled `cuobjdump`. Each
config is compiled as the JIT would for 16-byte aligned pointers and strides.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("attention_compile: unset TRITON_INTERPRET (the interpreter does not compile)")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from kernels.attention import triton_attention as ta  # noqa: E402

KERNELS = {
    "fwd": ta._attn_fwd_kernel,
    "dkdv": ta._attn_bwd_dkdv_kernel,
    "dq": ta._attn_bwd_dq_kernel,
}
INT_ARGS = ("H", "N_Q", "N_K")


def _signature(fn, dtype: str, constexprs: dict) -> dict[str, str]:
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in ("qk_scale", "sm_scale"):
            sig[name] = "fp32"
        elif name.startswith("stride") or name in INT_ARGS:
            sig[name] = "i32"
        elif name in ("LSE", "DELTA"):
            sig[name] = "*fp32"
        elif name.startswith(("ROW_", "COL_")):
            sig[name] = "*i32"
        else:
            sig[name] = f"*{dtype}"
    return sig


def _resource_usage(cubin: bytes) -> dict[str, int]:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run(
            [tool, "--dump-resource-usage", f.name], capture_output=True, text=True, check=True
        ).stdout
    line = next(ln for ln in text.splitlines() if "REG:" in ln)
    fields = dict(tok.split(":", 1) for tok in line.split() if ":" in tok)
    return {"regs": int(fields["REG"]), "stack": int(fields["STACK"])}


def compile_config(kind: str, config: triton.Config, head_dim: int, dtype: str, arch: int) -> dict:
    """Compile one kernel config for `sm_<arch>`; returns its resource use."""
    fn = KERNELS[kind].fn  # the JITFunction under the autotuner
    constexprs = {
        "N_BUCKET": 4096,
        "HEAD_DIM": head_dim,
        "BLOCK_D": max(16, triton.next_power_of_2(head_dim)),
        "UPCAST": False,
        "DOT_PRECISION": "ieee" if dtype == "fp32" else "tf32",
        **config.kwargs,
    }
    sig = _signature(fn, dtype, constexprs)
    aligned = {
        (i,): [["tt.divisibility", 16]]
        for i, name in enumerate(fn.arg_names)
        if sig[name].startswith("*") or name.startswith("stride")
    }
    src = ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=aligned)
    kernel = triton.compile(
        src,
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": config.num_warps, "num_stages": config.num_stages},
    )
    return {"smem": kernel.metadata.shared, **_resource_usage(kernel.asm["cubin"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90")
    parser.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="bf16")
    parser.add_argument("--head-dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--kernels", nargs="+", choices=sorted(KERNELS), default=list(KERNELS))
    parser.add_argument("--first-only", action="store_true", help="one config per kernel")
    parser.add_argument("--fail-on-spill", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    spilled = 0
    for kind in args.kernels:
        for head_dim in args.head_dims:
            configs = ta._prune(kind)(ta._configs(kind), {}, BLOCK_D=head_dim)
            for config in configs[:1] if args.first_only else configs:
                use = compile_config(kind, config, head_dim, args.dtype, args.arch)
                spilled += use["stack"] > 0
                print(
                    f"{kind:5} D={head_dim:<3} {args.dtype} BLOCK_M={config.kwargs['BLOCK_M']:<3} "
                    f"BLOCK_N={config.kwargs['BLOCK_N']:<3} warps={config.num_warps} "
                    f"stages={config.num_stages}  regs={use['regs']:<3} stack={use['stack']:<4} "
                    f"smem={use['smem']}",
                    flush=True,
                )
    return 1 if args.fail_on_spill and spilled else 0


if __name__ == "__main__":
    sys.exit(main())
