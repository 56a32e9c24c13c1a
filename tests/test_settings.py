"""Where bytes come from: one Settings value, from keywords, the environment or the command line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import Route

from mnistkit import ArgumentError, cli, load
from mnistkit.settings import Settings


def test_keywords_win_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MNISTKIT_HOME", str(tmp_path / "env-home"))
    monkeypatch.setenv("MNISTKIT_MIRROR", "http://env-a/, /env/b")
    monkeypatch.setenv("MNISTKIT_OFFLINE", "yes")
    monkeypatch.setenv("MNISTKIT_TIMEOUT", "7")
    env = Settings.resolve()
    assert env == Settings(tmp_path / "env-home", ("http://env-a/", "/env/b"), True, None, 7.0)
    given = Settings.resolve(tmp_path / "kw", ["http://kw/"], False, True, 3)
    assert given == Settings(tmp_path / "kw", ("http://kw/",), False, True, 3.0)
    assert Settings.resolve(mirrors=[]).mirrors == ()  # an empty list means none, not "read the variable"


def test_the_value_is_frozen_and_round_trips_through_keywords(tmp_path):
    settings = Settings.resolve(tmp_path, "a,b", True, False, 2.5)
    with pytest.raises(AttributeError):
        settings.offline = False  # type: ignore[misc]
    assert Settings.resolve(**settings.keywords()) == settings


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "soon"])
def test_a_bad_timeout_keyword_is_an_argument_error(bad):
    with pytest.raises(ArgumentError, match="timeout="):
        Settings.resolve(timeout=bad)


def test_load_takes_a_timeout(synth, home, server, monkeypatch):
    import dataclasses

    from mnistkit import registry

    ds = dataclasses.replace(synth.dataset, mirrors=(server.url + "/m/",))
    monkeypatch.setitem(registry.DATASETS, ds.name, ds)
    server.routes[f"/m/{'t10k-labels-idx1-ubyte.gz'}"] = Route(stall=True)
    server.routes[f"/m/{'t10k-images-idx3-ubyte.gz'}"] = Route(body=synth.gz["t10k-images-idx3-ubyte.gz"])
    from mnistkit import DownloadError

    with pytest.raises(DownloadError, match="timed out"):
        load(ds.name, "test", timeout=0.2)  # without it: 30 s per try, four tries


def test_cli_flags_build_the_settings_and_never_touch_the_environment(synth, home, server, tmp_path, capsys):
    other_home = tmp_path / "other home"
    server.serve_dataset(synth, prefix="/mirror")
    before = dict(os.environ)
    code = cli.main(
        ["--data-home", str(other_home), "--mirror", server.url + "/mirror", "--timeout", "5", "download", "tiny"]
    )
    assert code == 0, capsys.readouterr().err
    assert dict(os.environ) == before
    assert (other_home / "tiny" / "train-images-idx3-ubyte.gz").read_bytes() == synth.gz["train-images-idx3-ubyte.gz"]
    assert not (home / "tiny").exists()  # $MNISTKIT_HOME was not used
    assert server.gets("/mirror/tiny/train-images-idx3-ubyte.gz") == 1
    # --offline: the mirror is not asked again, the files are found where --data-home says
    assert cli.main(["--data-home", str(other_home), "--offline", "show", "tiny", "--index", "3"]) == 0
    assert f"label {synth.arrays['train-labels-idx1-ubyte.gz'][3]}" in capsys.readouterr().out
    assert cli.main(["--offline", "--mirror", server.url + "/mirror", "download", "tiny"]) == 3
    assert "offline" in capsys.readouterr().err
    assert cli.main(["--timeout", "nan", "list"]) == 2
    assert "--timeout nan" in capsys.readouterr().err  # the command line's words (README: Command line)


def test_cli_export_uses_the_mirror_flag(synth, home, server, tmp_path, capsys):
    server.serve_dataset(synth, prefix="/mirror")
    out = tmp_path / "out"
    assert cli.main(["--mirror", server.url + "/mirror", "export", "tiny", "--format", "npz", "--out", str(out)]) == 0
    with np.load(next(Path(out).glob("*.npz"))) as npz:
        np.testing.assert_array_equal(npz["y_test"], synth.arrays["t10k-labels-idx1-ubyte.gz"])
