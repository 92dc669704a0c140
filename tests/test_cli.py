"""The `amplify` command: verbs, help, and config errors that name the key and the value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from amplify.cli import VERBS, _resolve, main


def test_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for v in VERBS:
        assert v.name in out


def test_verb_help_shows_keys_and_defaults(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "ingest:" in out and "fps: 10.0" in out and "tracking:" in out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "input=x", "nosuchkey=1"], "nosuchkey"),
        (["run", "input=x", "ingest.fps=fast"], "ingest.fps"),
        (["run", "input=x", "ingest.width=100"], "ingest.width=100"),
        (["run"], "input"),
        (["status", "output=/nonexistent/ds"], "no committed job"),
    ],
)
def test_bad_config_names_the_key(capsys, args, needle):
    code = main(args)
    captured = capsys.readouterr()
    assert code != 0
    assert needle in captured.err + captured.out


def test_unknown_verb_and_positional_arguments(capsys):
    assert main(["fly"]) == 2
    assert main(["run", "somedir"]) == 2
    assert "key=value" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "amplify", "--help"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("usage: amplify")


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.name)
def test_every_verb_has_a_config_and_help(capsys, verb):
    from amplify.cli import _resolve
    from amplify.config import CONFIG_DIR, load_config

    assert (CONFIG_DIR / f"{verb.config}.yaml").is_file()
    assert main([*verb.name.split(), "--help"]) == 0
    assert callable(_resolve(verb.handler))
    required = {"run": ["input=x"], "export": ["input=x", "output=y"]}  # no defaults for these
    load_config(verb.config, _resolve(verb.schema), required.get(verb.name, []))


def test_a_folder_under_configs_never_shadows_a_key():
    """Hydra reads every folder of configs/ as a config group: `real=` would then select a group
    instead of setting the key (it once did, with configs/real/). Keys and folders stay apart."""
    from amplify.config import CONFIG_DIR, load_config
    from amplify.wfm.evaluate import WFMEvalConfig

    folders = {p.name for p in CONFIG_DIR.iterdir() if p.is_dir()}
    for verb in VERBS:
        schema = _resolve(verb.schema)
        assert not folders & set(schema.__dataclass_fields__), (verb.name, folders)
    assert load_config("eval_wfm", WFMEvalConfig, [f"real={CONFIG_DIR}"]).real == str(CONFIG_DIR)


def test_double_dash_key_value_reads_as_an_override(capsys):
    from amplify.cli import main

    # `--address=URL` (as `ray job submit` writes it) is `address=URL`: the verb runs and fails
    # on the address itself, not on the argument's form.
    assert main(["list", "--address=http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "http://127.0.0.1:1" in err and "key=value" not in err
