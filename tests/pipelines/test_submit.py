"""`amplify submit` and the verbs that follow a job (`status job=`, `logs`, `cancel`, `list`).

Fast (default run): the overrides a submit sends compose to the same `RunConfig`, the job request
never carries the token, and a missing or unreachable cluster is a clear error.

Slow: a real two-node Ray cluster on loopback (a head and a worker, `--num-cpus=1` each, token
authentication as Ray 2.60 requires), driven only through the `amplify` command: a submitted job
succeeds and is reported, another is cancelled, and a worker node whose raylet is killed with
SIGKILL mid-job leaves, after Ray's retry or a rerun, the dataset of the uninterrupted job, and no
process of that node behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amplify.cli import main
from amplify.config import RunConfig, load_config
from pipelines.submit import SubmitConfig, job_request, run_overrides

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
TOKEN = secrets.token_hex(16)  # this session's cluster token: no output or log may show it
INGEST = ["ingest.width=64", "ingest.height=32", "ingest.window=9", "ingest.stride=9"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def amplify(
    *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """The `amplify` command as a user runs it, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "amplify", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# 1. Fast: parsing, the token, no cluster -------------------------------------------------------


def test_submit_sends_the_overrides_that_compose_the_same_run_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides = ["input=clips", "output=out/ds", *INGEST, "generate.variations=[rain,night]",
                 "generate.match=['*.mp4','a b']", "tracking.uri=sqlite:////tmp/x y.db"]  # fmt: skip
    cfg = load_config("submit", SubmitConfig, [*overrides, "address=http://h:8265"])
    sent = run_overrides(cfg, "amplify-test")
    assert "ray.address=auto" in sent and f"input={tmp_path / 'clips'}" in sent
    assert not any(o.startswith(("address=", "follow=", "python=")) for o in sent)
    run = load_config("run", RunConfig, sent)
    want = load_config("run", RunConfig, overrides)
    assert run.generate == want.generate and run.ingest == want.ingest
    assert run.tracking == want.tracking and run.job_id == "amplify-test"
    assert (run.input, run.output) == (str(tmp_path / "clips"), str(tmp_path / "out/ds"))
    request = job_request(cfg)
    assert request["entrypoint"].startswith(
        f"cd {tmp_path} && exec {sys.executable} -m amplify run"
    )
    assert request["submission_id"].startswith("amplify-")
    assert request["metadata"]["output"] == str(tmp_path / "out/ds")


def test_the_job_request_never_carries_the_token(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    cfg = load_config("submit", SubmitConfig, ["input=/x", "output=/y"])
    assert TOKEN not in repr(job_request(cfg))


def test_no_cluster_at_the_address_is_a_clear_error_and_prints_no_token():
    url = f"http://127.0.0.1:{_free_port()}"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
    env.pop("RAY_ADDRESS", None)
    for args in (["submit", "input=/x", "output=/y"], ["list"], ["status", "job=j"]):
        r = amplify(*args, f"address={url}", env=env, timeout=60)
        assert r.returncode == 1, r.stderr
        assert f"no Ray cluster answers at {url}" in r.stderr
        assert TOKEN not in r.stdout + r.stderr


def test_no_address_names_the_key(monkeypatch, capsys):
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["list"]) == 2
    assert "address" in capsys.readouterr().err
    assert main(["logs", "address=http://h:8265"]) == 2
    assert "job=ID" in capsys.readouterr().err


# 2. A real two-node cluster on loopback --------------------------------------------------------


def _procs() -> dict[int, tuple[int, int, str, int]]:
    """pid -> (parent pid, session id, command line, start time) of every running process."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z":  # exited, waiting for its parent to read its status
            continue
        found[int(d.name)] = (int(fields[1]), int(fields[3]), cmd.strip(), int(fields[19]))
    return found


def _tree(root: int, procs: dict) -> set[int]:
    """`root`, its descendants, and every process of its session (setsid children included)."""
    found, todo = {root}, [root]
    while todo:
        p = todo.pop()
        kids = [c for c, (ppid, *_) in procs.items() if ppid == p and c not in found]
        found.update(kids)
        todo += kids
    return found | {p for p, (_, sid, *_) in procs.items() if sid == root}


def _kill_tree(root: int) -> None:
    try:
        os.killpg(root, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _tree(root, _procs()) - {root}:
        time.sleep(0.2)
    for p in _tree(root, _procs()):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Cluster:
    """A head and a worker (`ray start --block`, each in its own session, torn down by it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp = root / "ray"  # short: Ray's socket paths must fit in 107 bytes
        (root / "token").write_text(TOKEN)
        self.port, dash = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{dash}"
        # The cluster reads the token from a file, the client from RAY_AUTH_TOKEN: both routes.
        self.server_env = {**os.environ, "RAY_AUTH_MODE": "token",
                           "RAY_AUTH_TOKEN_PATH": str(root / "token")}  # fmt: skip
        for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_API_SERVER_ADDRESS"):
            self.server_env.pop(name, None)
        self.env = {**self.server_env, "RAY_AUTH_TOKEN": TOKEN}
        self.env.pop("RAY_AUTH_TOKEN_PATH")
        self.head = self._start(
            "head", "--head", f"--port={self.port}", f"--dashboard-port={dash}",
            "--dashboard-host=127.0.0.1", f"--ray-client-server-port={_free_port()}",
            f"--temp-dir={self.temp}", "--include-dashboard=true",
        )  # fmt: skip
        self._wait(lambda: self._alive_nodes() >= 1, "head")
        self.workers: list[subprocess.Popen] = []
        self.start_worker()

    @property
    def worker(self) -> subprocess.Popen:
        return self.workers[-1]

    def start_worker(self) -> None:
        """A worker node (again, after a kill test took the last one)."""
        if self.workers and self.worker.poll() is None:
            return
        self.workers.append(self._start("worker", f"--address=127.0.0.1:{self.port}"))
        self._wait(lambda: self._alive_nodes() >= 2, "worker")

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(
            [RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
             f"--dashboard-agent-listen-port={_free_port()}", "--disable-usage-stats", *args],
            env=self.server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def _alive_nodes(self) -> int:
        import requests

        try:
            r = requests.get(f"{self.url}/nodes?view=summary",
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)  # fmt: skip
            nodes = r.json()["data"]["summary"]
        except Exception:
            return 0
        return sum(n["raylet"]["state"] == "ALIVE" for n in nodes)

    def _wait(self, ready, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                logs = (self.root / f"{what}.log").read_text()[-2000:]
                raise TimeoutError(f"the {what} node did not come up:\n{logs}")
            time.sleep(1)

    def amplify(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return amplify(*args, f"address={self.url}", env=self.env, timeout=timeout)

    def submit(self, corpus: Path, out: Path, *extra: str) -> tuple[str, float]:
        """Submit the test job; return its id and the time `amplify submit` was started."""
        t0 = time.monotonic()
        r = self.amplify("submit", f"input={corpus}", f"output={out}", *INGEST, *extra,
                         "tracking.enabled=false", f"workdir={REPO}")  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert TOKEN not in r.stdout + r.stderr
        return r.stdout.split()[0], t0

    def driver_log(self, job: str) -> Path:
        return self.temp / "session_latest" / "logs" / f"job-driver-{job}.log"

    def wait(self, job: str, timeout: float = 300) -> str:
        """Follow the job's logs to its end (`amplify logs follow=true`); return its status."""
        r = self.amplify("logs", f"job={job}", "follow=true", timeout=timeout)
        assert TOKEN not in r.stdout + r.stderr
        return r.stdout.strip().splitlines()[-1].split()[-1]

    def close(self) -> None:
        for p in (*self.workers, self.head):
            _kill_tree(p.pid)
            p.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cl", numbered=True))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    r = amplify("synth", f"out={out}", "clips=1", "frames=9", "width=64", "height=32")
    assert r.returncode == 0, r.stderr
    return out


def _rows(out: Path) -> tuple[list[str], list[str]]:
    """Sorted clip ids and sorted sha256 of every frame's image bytes."""
    from amplify.dataset.reader import read_table

    clips = sorted(read_table(out, "clips", ["clip_id"]).column("clip_id").to_pylist())
    images = read_table(out, "frames", ["image"]).column("image").to_pylist()
    return clips, sorted(hashlib.sha256(i["bytes"]).hexdigest() for i in images)


def _until(pred, timeout: float, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := pred():
            return found
        time.sleep(poll)
    return None


@pytest.fixture(scope="module")
def submitted(cluster, corpus, tmp_path_factory):
    """One job submitted and left alone: the reference for the kill test. Also times it."""
    out = tmp_path_factory.mktemp("job") / "dataset"
    job, t0 = cluster.submit(corpus, out)
    log = cluster.driver_log(job)
    # The first ingested clip's line: "[1/12] name: ..." or "[ingest 1/12, ...] name: ...".
    first_row = re.compile(r"^\[(ingest )?1/\d+", re.M)
    first = _until(lambda: log.is_file() and first_row.search(log.read_text()), 300, poll=0.1)
    t_first = time.monotonic() - t0 if first else None
    manifest = out / "_manifests" / f"{job}.json"
    committed = _until(manifest.is_file, 300, poll=0.1)
    t_commit = time.monotonic() - t0 if committed else None
    print(f"\nsubmit -> first row staged: {t_first} s; -> committed: {t_commit} s")
    return job, out, {"first_row_s": t_first, "commit_s": t_commit}


@pytest.mark.slow
def test_a_submitted_job_succeeds_and_status_and_logs_report_it(
    cluster, submitted, record_property
):
    job, out, times = submitted
    for k, v in times.items():
        record_property(k, v)
    assert cluster.wait(job) == "SUCCEEDED"
    assert (out / "_manifests" / f"{job}.json").is_file()
    clips, images = _rows(out)
    assert len(clips) == 12 and len(images) == 12 * 9
    status = cluster.amplify("status", f"job={job}")
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout
    assert f"dataset  {out}  (committed" in status.stdout and "clips_ok=12" in status.stdout
    logs = cluster.amplify("logs", f"job={job}")
    assert logs.returncode == 0 and f"job {job} committed: 12 clip(s)" in logs.stdout
    listed = cluster.amplify("list")
    assert re.search(rf"{job}\s+SUCCEEDED", listed.stdout), listed.stdout
    dataset_status = amplify("status", f"output={out}")  # the dataset verb still works
    assert dataset_status.returncode == 0 and job in dataset_status.stdout
    # The token is in no output, no job log and no file of the dataset.
    texts = [r.stdout + r.stderr for r in (status, logs, listed)]
    texts += [p.read_text(errors="replace") for p in (cluster.temp / "session_latest" / "logs").rglob("*") if p.is_file()]  # fmt: skip
    texts += [p.read_text(errors="replace") for p in out.rglob("*.json")]
    assert not any(TOKEN in t for t in texts)


@pytest.mark.slow
def test_a_client_without_the_right_token_is_told_what_to_set(cluster):
    no_mode = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_MODE"}
    wrong = {**cluster.env, "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    for env, says in ((no_mode, "requires a token"), (wrong, "refused the token")):
        r = amplify("list", f"address={cluster.url}", env=env, timeout=60)
        assert r.returncode == 1 and says in r.stderr and "RAY_AUTH_MODE=token" in r.stderr
        assert TOKEN not in r.stdout + r.stderr and env["RAY_AUTH_TOKEN"] not in r.stderr


@pytest.mark.slow
def test_cancel_stops_a_submitted_job(cluster, corpus, tmp_path):
    out = tmp_path / "dataset"
    job, _ = cluster.submit(corpus, out)
    r = cluster.amplify("cancel", f"job={job}")
    assert r.returncode == 0 and f"job {job}: STOPPED" in r.stdout, r.stdout + r.stderr
    status = cluster.amplify("status", f"job={job}")
    assert status.returncode == 1 and "STOPPED" in status.stdout
    assert not (out / "_manifests" / f"{job}.json").exists()
    # The driver goes with the job.
    assert _until(lambda: not any(job in c for _, _, c, _ in _procs().values()), 30), job


@pytest.mark.slow
@pytest.mark.parametrize("task", ["_hash_row", "_ingest_row"], ids=["hash", "ingest"])
def test_a_killed_worker_node_loses_nothing_and_leaves_no_process(
    cluster, corpus, submitted, tmp_path, record_property, task
):
    """SIGKILL the worker node's raylet while it runs `task` of the job (hash: before anything is
    written; ingest: while it stages Parquet parts, its decoder child process included)."""
    ref_job, ref_out, _ = submitted
    assert cluster.wait(ref_job) == "SUCCEEDED"
    cluster.start_worker()
    out = tmp_path / "dataset"
    job, _ = cluster.submit(corpus, out)

    # 1. Wait until the worker node runs `task` of the job, then SIGKILL its raylet.
    def busy_raylet():
        procs = _procs()
        node = _tree(cluster.worker.pid, procs)
        raylets = [p for p in node if "raylet/raylet" in procs[p][2]]
        busy = [p for p in node if procs[p][2].startswith(f"ray::Map({task})")]
        if task == "_ingest_row":  # and its decoder child is up (amplify/io/isolated.py)
            busy = [p for p in busy if any(ppid == p for ppid, *_ in procs.values())]
        return (raylets[0], node, procs, busy) if raylets and busy else None

    found = _until(busy_raylet, 300, poll=0.02)
    assert found, f"no {task} task of the job ran on the worker node"
    raylet, node, procs, busy = found
    os.kill(raylet, signal.SIGKILL)
    t_kill = time.monotonic()
    killed = {p: procs[p] for p in node}  # a pid is the same process only with its start time

    # 2. No process of the killed node is left (the `ray start --block` that watched it included).
    def survivors():
        procs = _procs()
        return {p: k[2] for p, k in killed.items() if procs.get(p, (0,) * 4)[3] == k[3]}

    assert _until(lambda: not survivors(), 30, poll=0.1) is not None, survivors()
    gone_s = time.monotonic() - t_kill

    # 3. Ray retries on the head, or the job fails and a rerun finishes it.
    status = cluster.wait(job)
    record_property("after_kill", status)
    running = sorted({procs[p][2].split()[0] for p in busy})
    print(f"\nkilled the worker's raylet while it ran {running}: its {len(killed)} processes gone "
          f"{gone_s:.1f} s later; the job then {status}")  # fmt: skip
    if status != "SUCCEEDED":
        job, _ = cluster.submit(corpus, out)
        assert cluster.wait(job) == "SUCCEEDED"
    assert _rows(out) == _rows(ref_out)
