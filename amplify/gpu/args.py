"""`key=value` arguments of the GPU scripts (`python -m amplify.gpu.prepare|train key=value ...`).

The lent GPU machine has no Hydra or OmegaConf, so these two scripts cannot go through
`amplify.config.load_config`. They are no `amplify` verb and have no YAML: their dataclass
(`PrepareConfig`, `GpuTrainConfig`) is their only source of defaults, and this parser only turns
the strings of the command line into its field types. Every other entry point uses the loader.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

from amplify.errors import ConfigError

T = TypeVar("T")


def parse_args(schema: type[T], argv: list[str]) -> T:
    """`schema` built from `key=value` pairs; `key=[a,b]` (or `a,b`) for a tuple field."""
    types = {f.name: str(f.type) for f in fields(schema)}  # type: ignore[arg-type]
    kw: dict = {}
    for arg in argv:
        key, eq, val = arg.partition("=")
        if not eq:
            raise ConfigError(key, arg, "arguments are key=value")
        if key not in types:
            raise ConfigError(key, val, f"unknown key; known: {sorted(types)}")
        t = types[key]
        try:
            if "tuple" in t:
                kw[key] = tuple(v for v in val.strip("[]").split(",") if v)
            elif t == "bool":
                if val.lower() not in ("1", "true", "yes", "0", "false", "no"):
                    raise ValueError(val)
                kw[key] = val.lower() in ("1", "true", "yes")
            elif t == "int":
                kw[key] = int(val)
            elif t == "float":
                kw[key] = float(val)
            else:
                kw[key] = val
        except ValueError:
            raise ConfigError(key, val, f"not a {t}") from None
    return schema(**kw)
