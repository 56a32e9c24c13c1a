"""The README's cluster recipes, each run for real on this machine: nodes are processes, storage is loopback.

* a shared filesystem as the data home: many processes, one download per file (the per-file lock);
* an object-store mirror: published once from the login node, read by every node (moto's S3 on 127.0.0.1);
* `mnistkit serve` on the login node: the internet is crossed once, nodes read from the login node;
* PyTorch's DistributedSampler on two nodes of two ranks: which ranks fetch what.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess

import numpy as np
import pytest
from helpers import cli_argv

from mnistkit import load

IMAGES = "train-images-idx3-ubyte.gz"


def start_nodes(args: list[str], envs: list[dict]) -> list[subprocess.Popen]:
    """Start one `mnistkit` process per environment, all at once."""
    return [
        subprocess.Popen(cli_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for env in envs
    ]


def finish(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, out + err


def test_shared_filesystem_as_data_home_downloads_each_file_once(synth, tmp_path, server):
    server.serve_dataset(synth)
    shared = tmp_path / "nfs" / "mnistkit"  # one folder every node mounts
    env = {**os.environ, "MNISTKIT_HOME": str(shared), "MNISTKIT_MIRROR": server.url}
    finish(start_nodes(["download", "tiny"], [env] * 6))
    for name, data in synth.gz.items():
        assert server.gets(f"/tiny/{name}") == 1, name
        assert (shared / "tiny" / name).read_bytes() == data
    x, _ = load("tiny", data_home=shared, normalize=False, offline=True)
    np.testing.assert_array_equal(x.reshape(-1, 28, 28), synth.arrays[IMAGES])


def test_serve_on_the_login_node_crosses_the_internet_once(synth, tmp_path, server):
    server.serve_dataset(synth)  # stands for the public mirrors
    login = tmp_path / "login"
    env = {**os.environ, "MNISTKIT_HOME": str(login), "MNISTKIT_MIRROR": server.url}
    finish(start_nodes(["download", "tiny"], [env]))
    serving = subprocess.Popen(
        cli_argv("serve", "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "MNISTKIT_MIRROR": ""},
    )
    try:
        line = serving.stdout.readline()
        assert line.startswith("serving on http://127.0.0.1:"), line + serving.stderr.read()
        url = line.split()[2]
        nodes = [{**os.environ, "MNISTKIT_HOME": str(tmp_path / f"node{i}"), "MNISTKIT_MIRROR": url} for i in range(4)]
        finish(start_nodes(["download", "tiny"], nodes))
    finally:
        serving.terminate()
        serving.communicate(timeout=30)
    for name, data in synth.gz.items():
        assert server.gets(f"/tiny/{name}") == 1, name  # only the login node went out
        for i in range(4):
            assert (tmp_path / f"node{i}" / "tiny" / name).read_bytes() == data


# --- object store ---------------------------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch):
    pytest.importorskip("s3fs", reason="needs the test extra (fsspec, s3fs, moto[server])")
    pytest.importorskip("moto", reason="needs moto[server] (pip install '.[test]')")
    from s3server import S3Server, s3_env

    with S3Server() as srv:
        for key in list(os.environ):
            if key.startswith(("AWS_", "FSSPEC_")):
                monkeypatch.delenv(key)
        for key, value in s3_env(srv.url).items():
            monkeypatch.setenv(key, value)
        yield srv


def make_bucket(name: str) -> None:
    from mnistkit.remote import filesystem

    fs, _ = filesystem(f"s3://{name}")
    fs.mkdir(name)


def test_object_store_mirror_published_once_read_by_every_node(synth, tmp_path, s3):
    login = tmp_path / "login"
    synth.write(login)
    make_bucket("cluster")
    env = {**os.environ, "MNISTKIT_HOME": str(login)}
    finish(start_nodes(["publish", "s3://cluster/mnistkit", "tiny"], [env]))
    nodes = [
        {**os.environ, "MNISTKIT_HOME": str(tmp_path / f"node{i}"), "MNISTKIT_MIRROR": "s3://cluster/mnistkit"}
        for i in range(3)
    ]
    finish(start_nodes(["download", "tiny"], nodes))
    for name, data in synth.gz.items():
        assert len(s3.gets(f"/cluster/mnistkit/tiny/{name}")) == 3, name  # one read per node
        for i in range(3):
            assert (tmp_path / f"node{i}" / "tiny" / name).read_bytes() == data
    check = subprocess.run(cli_argv("verify", "--mirror", "s3://cluster/mnistkit"), capture_output=True, text=True)
    assert check.returncode == 0 and "4 checked, 0 bad" in check.stdout, check.stdout + check.stderr


def _rank(node_home, mirror, rank, world, barrier, queue):
    from torch.utils.data import DistributedSampler

    from mnistkit.adapters.torch import torch_dataset

    barrier.wait()  # every rank of every node starts at once
    ds = torch_dataset("tiny", "train", data_home=node_home, mirrors=mirror)
    sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=0)
    queue.put((rank, list(sampler)))


def test_distributed_sampler_two_nodes_of_two_ranks(synth, tmp_path, s3):
    pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0")
    from mnistkit.mirror import publish

    synth.write(tmp_path / "login")
    make_bucket("ddp")
    publish("s3://ddp/m", ["tiny"], data_home=tmp_path / "login")
    world, context = 4, multiprocessing.get_context("fork")  # children inherit the registered "tiny"
    barrier, queue = context.Barrier(world), context.Queue()
    homes = [str(tmp_path / "node0"), str(tmp_path / "node0"), str(tmp_path / "node1"), str(tmp_path / "node1")]
    procs = [
        context.Process(target=_rank, args=(homes[r], "s3://ddp/m", r, world, barrier, queue)) for r in range(world)
    ]
    for p in procs:
        p.start()
    got = dict(queue.get(timeout=180) for _ in range(world))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    # every rank needs every file of the split (the sampler splits indices, not files):
    # per node, one rank downloads each file under its lock and the other maps the cache
    for name in (IMAGES, "train-labels-idx1-ubyte.gz"):
        assert len(s3.gets(f"/ddp/m/tiny/{name}")) == 2, name
    assert not s3.gets("/ddp/m/tiny/t10k-images-idx3-ubyte.gz")  # the test split was never asked for
    indices = [i for r in range(world) for i in got[r]]
    assert sorted(indices) == list(range(len(synth.arrays[IMAGES])))  # disjoint, and all of them
