"""`amplify submit`: the job of `amplify run`, sent to a running Ray cluster through Ray Jobs, and
the verbs that follow it by its Ray job id (`status job=ID`, `logs`, `cancel`, `list`).

    address   `address=http://HOST:8265` (the head's dashboard) > the submit's `ray.address`
              > RAY_API_SERVER_ADDRESS > RAY_ADDRESS; none: a ConfigError naming `address`
    job       entrypoint `cd CWD && exec PYTHON -m amplify run <the overrides> ray.address=auto`:
              the overrides are the keys this submit changed, paths made absolute; the driver
              joins the cluster it runs on, and the Ray job id is also the dataset's job id
              (`_manifests/<id>.json`)
    auth      token authentication (`RAY_AUTH_MODE=token`): Ray's own client puts the token in
              the `Authorization` header (RAY_AUTH_TOKEN > RAY_AUTH_TOKEN_PATH >
              ~/.ray/auth_token). This module never reads it, and it is never in the entrypoint,
              the runtime_env or the metadata, which `amplify list` and the dashboard show.

Shared filesystem: nothing is uploaded. The cluster's nodes see this machine's paths (one
machine, or NFS mounted at the same place on every node): the repository and its venv (`python=`,
default this interpreter), the working directory (`workdir=`, default this one: relative paths and
the default `mlflow.db` land where `amplify run` would put them), the inputs and the output.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from amplify.config import RunConfig
from amplify.errors import AmplifyError, ConfigError

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
ID_PREFIX = "amplify-"


class ClusterError(AmplifyError):
    """No Ray cluster answers at the address, it refused the token, or it has no such job."""


@dataclass(frozen=True)
class SubmitConfig(RunConfig):
    """`amplify submit`: the job of `amplify run` (same keys: input=DIR output=DIR ...) on a
    running Ray cluster, through Ray Jobs. Prints the Ray job id, which is also the dataset's job
    id. Token auth: `export RAY_AUTH_MODE=token`, token in ~/.ray/auth_token or RAY_AUTH_TOKEN.
    The cluster must see this machine's paths (shared filesystem): nothing is uploaded."""

    address: str = ""  # http://HOST:8265; "" = ray.address, then RAY_ADDRESS
    follow: bool = False  # stream the job's logs until it ends; exit code 0 only if it succeeded
    python: str = ""  # the interpreter on the cluster; "" = this one (same venv, shared filesystem)
    workdir: str = ""  # the job's working directory; "" = this one
    entrypoint_num_cpus: float = 0.0  # CPUs held by the driver (the job's tasks ask for their own)

    def __post_init__(self) -> None:
        # `amplify submit --help` composes without input=; submitting checks it (`job_request`).
        if self.input:
            super().__post_init__()


@dataclass(frozen=True)
class LogsConfig:
    """`amplify logs job=ID`: the output of a submitted job (follow=true: until it ends)."""

    job: str = ""
    address: str = ""  # http://HOST:8265; "" = RAY_ADDRESS
    follow: bool = False


@dataclass(frozen=True)
class CancelConfig:
    """`amplify cancel job=ID`: stop a submitted job and wait until Ray reports it STOPPED.
    Nothing it staged is committed; a later run of the same job skips only committed work."""

    job: str = ""
    address: str = ""  # http://HOST:8265; "" = RAY_ADDRESS
    wait_s: float = 60.0  # 0 = ask and return


@dataclass(frozen=True)
class ListConfig:
    """`amplify list`: the jobs of a Ray cluster, oldest first."""

    address: str = ""  # http://HOST:8265; "" = RAY_ADDRESS
    all: bool = False  # also jobs not submitted by `amplify submit`


# 1. Where the cluster is, and a client that reaches it ------------------------------------------


def cluster_address(address: str = "", ray_address: str = "") -> str:
    """The Ray Jobs address: `address=`, then `ray.address`, then the environment."""
    env = os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS") or ""
    found = (address or ray_address or env).rstrip("/")
    if not found:
        raise ConfigError(
            "address", address, "no Ray cluster given: address=http://HOST:8265 or RAY_ADDRESS"
        )
    return found


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _auth_message(address: str, detail: str) -> str:
    mode = os.environ.get("RAY_AUTH_MODE", "") or "unset"
    what = "refused the token" if "failed" in detail.lower() else "requires a token"
    return (
        f"the Ray cluster at {address} {what} (RAY_AUTH_MODE={mode} here): export "
        "RAY_AUTH_MODE=token and give the cluster's token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
        "or ~/.ray/auth_token"
    )


@contextmanager
def _cluster_errors(address: str, job: str = "") -> Iterator[None]:
    """Ray's client errors -> one ClusterError that says what to do (never the token)."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as e:
        raise ClusterError(_auth_message(address, str(e).split("\n")[0])) from None
    except (ConnectionError, requests.exceptions.ConnectionError):
        raise ClusterError(
            f"no Ray cluster answers at {address}: is the head up (`ray start --head`), and is "
            "this its dashboard address (http://HOST:8265)?"
        ) from None
    except RuntimeError as e:
        if job and "does not exist" in str(e):
            raise ClusterError(f"no job {job!r} on the Ray cluster at {address}") from None
        raise ClusterError(f"Ray cluster at {address}: {e}") from None


def connect(address: str):
    """A JobSubmissionClient for `address` (the explicit address beats RAY_ADDRESS)."""
    from ray.job_submission import JobSubmissionClient

    # Ray's client always prefers RAY_API_SERVER_ADDRESS / RAY_ADDRESS over its argument.
    with _env("RAY_API_SERVER_ADDRESS", address), _cluster_errors(address):
        return JobSubmissionClient(address)


# 2. The job: `amplify run` with this submit's overrides -----------------------------------------

RUN_KEYS = tuple(f.name for f in fields(RunConfig))


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_BARE = re.compile(r"[A-Za-z_/.][\w./@+-]*")  # a string Hydra reads as itself, unquoted


def _hydra(value: object) -> str:
    """A value in Hydra's override grammar (strings quoted: '*', ',' and '=' stay literal)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_hydra(v) for v in value) + "]"
    s = str(value)
    if _BARE.fullmatch(s) and s.lower() not in ("true", "false", "null", "nan", "inf"):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_overrides(cfg: SubmitConfig, job_id: str) -> list[str]:
    """The `amplify run` overrides of this submit: the keys it changed from the defaults (so the
    cluster composes them over configs/run.yaml, as `amplify run` does), paths absolute, the job
    id fixed, and `ray.address=auto`: the driver joins the cluster it runs on."""
    absolute = {
        "input": str(Path(cfg.input).resolve()),
        "output": str(Path(cfg.output).resolve()),
        "extra_inputs": [str(Path(p).resolve()) for p in cfg.extra_inputs],
        "job_id": job_id,
    }
    ours = _flat({k: v for k, v in asdict(cfg).items() if k in RUN_KEYS} | absolute)
    default = _flat({k: v for k, v in asdict(SubmitConfig()).items() if k in RUN_KEYS})
    keep = [k for k, v in ours.items() if k in ("input", "output") or v != default.get(k)]
    # `ray.*` describe the embedded Ray or name the cluster; on the cluster the driver joins it.
    return [f"{k}={_hydra(ours[k])}" for k in keep if not k.startswith("ray.")] + [
        "ray.address=auto"
    ]


def new_submission_id() -> str:
    # Also the dataset's job id; sorts by submit time like `amplify run`'s ids.
    import uuid

    return ID_PREFIX + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def _need_input(cfg: SubmitConfig) -> None:
    if not cfg.input:
        raise ConfigError("input", cfg.input, "give the folder (or file) of clips: input=DIR")


def job_request(cfg: SubmitConfig) -> dict:
    """The keyword arguments of `JobSubmissionClient.submit_job` for this submit."""
    _need_input(cfg)
    job_id = cfg.job_id or new_submission_id()
    python = cfg.python or sys.executable
    workdir = str(Path(cfg.workdir or os.getcwd()).resolve())
    args = " ".join(shlex.quote(o) for o in run_overrides(cfg, job_id))
    return {
        "submission_id": job_id,
        "entrypoint": f"cd {shlex.quote(workdir)} && exec {shlex.quote(python)} -m amplify run {args}",
        # Unbuffered: `amplify logs follow=true` shows each clip as it finishes.
        "runtime_env": {"env_vars": {"PYTHONUNBUFFERED": "1"}},
        "metadata": {"amplify": "run", "output": str(Path(cfg.output).resolve())},
        "entrypoint_num_cpus": cfg.entrypoint_num_cpus or None,
    }


# 3. The verbs ------------------------------------------------------------------------------------


def submit(cfg: SubmitConfig, client=None) -> str:
    """Submit the job; return its Ray job id."""
    request = job_request(cfg)
    address = cluster_address(cfg.address, cfg.ray.address)
    client = client or connect(address)
    with _cluster_errors(address):
        return client.submit_job(**request)


def wait(client, job: str, timeout_s: float, poll_s: float = 0.5) -> str:
    """Poll until the job is in a terminal state or `timeout_s` passed; return its status."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(client.get_job_status(job).value)
        if status in TERMINAL or time.monotonic() > deadline:
            return status
        time.sleep(poll_s)


def follow_logs(client, job: str, out=sys.stdout) -> str:
    """Stream the job's logs until it ends; return its final status."""
    import asyncio

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job):
            out.write(chunk)
            out.flush()

    asyncio.run(tail())
    return wait(client, job, timeout_s=30)


def _clock(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _took(info) -> str:
    if not info.start_time:
        return "-"
    end = info.end_time or time.time() * 1000
    return f"{(end - info.start_time) / 1000:.1f} s"


def do_submit(cfg: SubmitConfig) -> int:
    _need_input(cfg)  # before reaching for the cluster
    address = cluster_address(cfg.address, cfg.ray.address)
    client = connect(address)
    job = submit(cfg, client)
    print(job)
    print(f"submitted to {address}; follow it with:", file=sys.stderr)
    print(f"  amplify status job={job} address={address}", file=sys.stderr)
    print(f"  amplify logs job={job} address={address} follow=true", file=sys.stderr)
    if not cfg.follow:
        return 0
    with _cluster_errors(address, job):
        status = follow_logs(client, job)
    print(f"job {job}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def _need_job(job: str) -> None:
    if not job:
        raise ConfigError("job", job, "give the Ray job id: job=ID (`amplify list` shows them)")


def job_status(job: str, address: str = "") -> int:
    """`amplify status job=ID`: state, times, the dataset once committed; 0 only if SUCCEEDED."""
    _need_job(job)
    address = cluster_address(address)
    client = connect(address)
    with _cluster_errors(address, job):
        info = client.get_job_info(job)
    status = str(info.status.value)
    print(f"{job}  {status}  started {_clock(info.start_time)}  {_took(info)}")
    output = (info.metadata or {}).get("output")
    if output:
        manifest = Path(output) / "_manifests" / f"{job}.json"
        state = "committed" if manifest.is_file() else "not committed"
        print(f"dataset  {output}  ({state}: {manifest.name})")
        if manifest.is_file():
            from amplify.dataset.writer import read_manifests

            for m in read_manifests(output):
                if m.job_id == job:
                    print("counts   " + " ".join(f"{k}={v}" for k, v in sorted(m.counts.items())))
    if status in ("FAILED", "STOPPED") and info.message:
        print("message  " + info.message.strip().splitlines()[0])
    return 0 if status == "SUCCEEDED" else 1


def do_logs(cfg: LogsConfig) -> int:
    _need_job(cfg.job)
    address = cluster_address(cfg.address)
    client = connect(address)
    with _cluster_errors(address, cfg.job):
        if cfg.follow:
            status = follow_logs(client, cfg.job)
            print(f"job {cfg.job}: {status}")
            return 0 if status == "SUCCEEDED" else 1
        sys.stdout.write(client.get_job_logs(cfg.job))
    return 0


def do_cancel(cfg: CancelConfig) -> int:
    _need_job(cfg.job)
    address = cluster_address(cfg.address)
    client = connect(address)
    with _cluster_errors(address, cfg.job):
        stopping = client.stop_job(cfg.job)
        status = wait(client, cfg.job, cfg.wait_s) if cfg.wait_s > 0 else "STOPPING"
    if not stopping and status != "STOPPED":
        print(f"job {cfg.job}: already {status}")
        return 1
    print(f"job {cfg.job}: {status}")
    return 0 if status in ("STOPPED", "STOPPING") else 1


def do_list(cfg: ListConfig) -> int:
    address = cluster_address(cfg.address)
    client = connect(address)
    with _cluster_errors(address):
        jobs = client.list_jobs()
    jobs = [j for j in jobs if cfg.all or (j.metadata or {}).get("amplify") == "run"]
    if not jobs:
        print(f"no {'' if cfg.all else 'amplify '}job on the Ray cluster at {address}")
        return 0
    for j in sorted(jobs, key=lambda j: j.start_time or 0):
        what = (j.metadata or {}).get("output") or j.entrypoint[:60]
        print(
            f"{j.submission_id}  {j.status.value:<9}  {_clock(j.start_time)}  {_took(j):>8}  {what}"
        )
    return 0
