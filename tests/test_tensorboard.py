"""`hyperlax report --tensorboard DIR`: each finished sample's hyperparameters, metrics and
learning curves as TensorBoard event files, read back here record by record (CRCs checked);
a missing tensorboardX is a clear error naming the extra, before anything is written."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import TINY_RECIPE
from hyperlax.cli.main import main
from hyperlax.plan.read import read_plan

pytest.importorskip("tensorboardX")
from tensorboardX.proto import event_pb2  # noqa: E402
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData  # noqa: E402
from tensorboardX.record_writer import masked_crc32c  # noqa: E402

# the tests' tiny recipe, with a categorical in its space (TensorBoard shows it as a string)
RECIPE = TINY_RECIPE + '"network.activation" = { dist = "categorical", values = ["tanh"] }\n'


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def read_events(path: Path) -> list[event_pb2.Event]:
    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc32c(header)
        body = data[at + 12:at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == \
            masked_crc32c(body)
        events.append(event_pb2.Event.FromString(body))
        at += 16 + length
    return events


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tb")
    (tmp / "tiny.toml").write_text(RECIPE)
    root = tmp / "sweep"
    result = invoke("sweep-hp-samples", "--algo-and-network-config", tmp / "tiny.toml",
                    "--env-config", "gymnax.cartpole", "--num-samples", 2,
                    "--hparam-batch-size", 2, "--num-agents-slash-seeds", 2,
                    "--output-root", root, "--log-level", "WARNING")
    assert result.exit_code == 0, result.output
    return root


def test_report_writes_hparams_and_curves_tensorboard_reads(sweep, tmp_path):
    tb = tmp_path / "tb"
    result = invoke("report", sweep, "--no-plots", "--tensorboard", tb)
    assert result.exit_code == 0, result.output
    assert f"wrote TensorBoard events of 2 samples to {tb}" in result.output
    plan, _ = read_plan(sweep / "plan.msgpack")
    entry = sweep / "tiny" / "gymnax_cartpole" / "samples" / "batch_00000"
    summary = {s["sample"]: s for s in json.loads((entry / "summary.json").read_text())["samples"]}
    with np.load(entry / "curves.npz") as data:
        steps, returns = data["eval_steps"], data["returns"]       # [S, R, E]
    assert sorted(p.name for p in tb.iterdir()) == ["sample_00000", "sample_00001"]
    for sample in plan.samples:
        events = read_events(tb / f"sample_{sample.index:05d}" / "events.out.tfevents.hyperlax")
        assert events[0].file_version == "brain.Event:2"
        plugin = {}
        scalars: dict[str, dict[int, float]] = {}
        for event in events[1:]:
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    plugin[value.tag] = HParamsPluginData.FromString(
                        value.metadata.plugin_data.content)
                else:
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
        experiment = plugin["_hparams_/experiment"].experiment
        assert sorted(h.name for h in experiment.hparam_infos) == sorted(plan.sampled)
        assert [m.name.tag for m in experiment.metric_infos] == ["hparam/final_return",
                                                                 "hparam/best_return"]
        start = plugin["_hparams_/session_start_info"].session_start_info.hparams
        assert start["actor_lr"].number_value == sample.values["actor_lr"]
        assert start["network.activation"].string_value == "tanh"
        mean = returns[sample.index].mean(axis=0)
        assert list(scalars["return/mean"]) == [int(s) for s in steps]
        np.testing.assert_allclose(list(scalars["return/mean"].values()), mean, rtol=1e-6)
        np.testing.assert_allclose(list(scalars["return/replicate_1"].values()),
                                   returns[sample.index, 1], rtol=1e-6)
        final = summary[sample.index]["final_return"]
        assert scalars["hparam/final_return"] == {int(steps[-1]): pytest.approx(final)}


def test_a_missing_tensorboardx_names_the_extra(sweep, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)   # import fails
    result = invoke("report", sweep, "-o", tmp_path / "report", "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--tensorboard: needs tensorboardX, which is not installed" in result.output
    assert "pip install 'hyperlax[tensorboard]'" in result.output
    assert not (tmp_path / "report").exists() and not (tmp_path / "tb").exists()
