"""Configuration: good files load, bad ones are refused naming the YAML path, the value and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import ConfigError, load_config, parse_config
from edge_agent.types import Anchor


def base(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "model.onnx").write_bytes(b"not checked here")
    (tmp_path / "clip.avi").write_bytes(b"not checked here")
    return {
        "model": {"path": "model.onnx"},
        "cameras": [{"id": "cam1", "source": "clip.avi",
                     "lines": [{"id": "stop-bar", "p1": [10, 200], "p2": [600, 210]}]}],
    }


def merge(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set ``a.b[0].c`` in a deep copy of ``doc``; value ``...`` deletes the key."""
    out = copy.deepcopy(doc)
    node: Any = out
    parts = [int(p) if p.isdigit() else p for p in path.replace("[", ".").replace("]", "").split(".")]
    for p in parts[:-1]:
        node = node[p] if not isinstance(node, dict) else node.setdefault(p, {})
    if value is ...:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return out


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    f = tmp_path / "agent.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def refused(tmp_path: Path, doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, doc))
    return str(exc.value)


def test_minimal_config_loads_with_defaults_and_resolves_paths(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, base(tmp_path)))
    assert cfg.mqtt.port == 1883 and cfg.mqtt.topic_prefix == "traffic"
    assert cfg.statistics.interval_s == 60
    assert cfg.model.path == tmp_path / "model.onnx"
    cam = cfg.cameras[0]
    assert cam.is_file and cam.source == str(tmp_path / "clip.avi")
    line = cam.lines[0]
    assert line.p1 == (10.0, 200.0) and line.in_side == "right" and line.anchor is Anchor.BOTTOM_CENTER


def test_example_configs_in_repository_are_valid() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(f for f in root.glob("*.yaml") if not f.name.startswith("controller"))
    assert len(files) >= 2, "configs/ holds example agent configurations"
    for f in files:
        load_config(f, check_files=False)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # a point with one number: the issue's own example
        ("cameras[0].lines[0].p2", [120],
         "cameras[0].lines[0].p2: expected [x, y] with 2 numbers, got [120]"),
        # a typo in a key: named, with the keys that are allowed there
        ("cameras[0].lines[0].in_sied", "left",
         "cameras[0].lines[0].in_sied: unknown key; allowed keys here: id, p1, p2, in_side"),
        ("cameras[0].lines[0].in_side", "north",
         "cameras[0].lines[0].in_side: Input should be 'left' or 'right', got 'north'"),
        ("model.device", "gpu",
         "model.device: Input should be 'auto', 'cpu', 'cuda', 'tensorrt' or 'openvino', got 'gpu'"),
        ("model.confidence", 1.5, "model.confidence: Input should be less than or equal to 1, got 1.5"),
        ("mqtt.port", 70000, "mqtt.port: Input should be less than or equal to 65535, got 70000"),
        ("statistics.interval_s", 70,
         "statistics.interval_s: expected a divisor of 86400 (e.g. 10, 60, 300, 900, 3600)"),
        ("cameras[0].id", "cam/1", "cameras[0].id: String should match pattern"),
        ("mqtt.password", "hunter2", "'password' is not allowed in the YAML file"),
        ("mqtt.topic_prefix", "traffic/#", "mqtt.topic_prefix: expected topic levels"),
        ("cameras[0].lines[0].p1", [600, 210], "are the same point [600.0, 210.0]"),
        ("cameras[0].start_time", "2024-05-01T08:00:00",
         "cameras[0].start_time: expected a time zone, e.g. 2024-05-01T08:00:00Z"),
        ("model.input_size", 500, "model.input_size: expected a multiple of 32"),
        ("model.rect", "sometimes", "model.rect: Input should be a valid boolean"),
        ("cameras[0].source", -1, "cameras[0].source: expected a file path, an rtsp:// or http(s):// URL"),
        ("model.path", ..., "model.path: required field is missing"),
    ],
)
def test_bad_field_is_refused_with_path_value_and_rule(tmp_path: Path, path: str, value: Any,
                                                       expected: str) -> None:
    message = refused(tmp_path, merge(base(tmp_path), path, value))
    assert expected in message
    assert "line " in message  # the YAML line is named too


def test_rect_on_a_fixed_shape_model_is_refused_at_start(tmp_path: Path, coco_model: Path, vtest_video: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from edge_agent.cli import main

    assert load_config(write(tmp_path, base(tmp_path))).model.rect is None  # auto: rect when the model allows
    doc = merge(base(tmp_path), "model.rect", True)
    assert load_config(write(tmp_path, doc)).model.rect is True
    doc = merge(merge(doc, "model.path", str(coco_model)), "cameras[0].source", str(vtest_video))
    assert main(["check-config", str(write(tmp_path, doc))]) == 2
    err = capsys.readouterr().err
    assert (f"model.rect: {coco_model}: rect input shapes need a model with dynamic input height and width; "
            "its input is fixed at [1, 3, 640, 640]") in err
    assert main(["check-config", str(write(tmp_path, merge(doc, "model.rect", False)))]) == 0


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    doc = merge(merge(base(tmp_path), "mqtt.port", 0), "model.iou", 0)
    message = refused(tmp_path, doc)
    assert "mqtt.port" in message and "model.iou" in message


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    doc = base(tmp_path)
    doc["cameras"].append(copy.deepcopy(doc["cameras"][0]))
    assert "camera id 'cam1' is used twice" in refused(tmp_path, doc)
    doc = base(tmp_path)
    doc["cameras"][0]["lines"].append(copy.deepcopy(doc["cameras"][0]["lines"][0]))
    assert "cameras[0]: line or zone id 'stop-bar' is used twice" in refused(tmp_path, doc)


def test_missing_files_are_named(tmp_path: Path) -> None:
    doc = merge(base(tmp_path), "cameras[0].source", "nowhere.mp4")
    message = refused(tmp_path, doc)
    assert f"cameras[0].source: video file not found: {tmp_path / 'nowhere.mp4'}" in message
    doc = merge(base(tmp_path), "model.path", "missing.onnx")
    assert "model.path: model file not found" in refused(tmp_path, doc)


def test_start_time_on_a_live_source_is_refused(tmp_path: Path) -> None:
    doc = merge(base(tmp_path), "cameras[0].source", "rtsp://user:pw@10.0.0.5/stream1")
    doc = merge(doc, "cameras[0].start_time", "2024-05-01T08:00:00Z")
    assert "cameras[0].start_time: only file sources take start_time" in refused(tmp_path, doc)


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("model:\n  path: m.onnx\ncameras:\n\t- id: x\n")
    with pytest.raises(ConfigError, match="line 4: a tab character"):
        load_config(f)
    f.write_text("model:\n  path: m.onnx\nmodel:\n  path: n.onnx\ncameras: []\n")
    with pytest.raises(ConfigError, match=r"line 3, column 1: not valid YAML: duplicate key 'model' \(first at line 1\)"):
        load_config(f)
    f.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "absent.yaml")


def test_error_points_at_the_yaml_line_of_the_field(tmp_path: Path) -> None:
    text = (
        "model:\n"
        "  path: m.onnx\n"
        "cameras:\n"
        "  - id: cam1\n"
        "    source: 0\n"
        "    lines:\n"
        "      - id: a\n"
        "        p1: [0, 0]\n"
        "        p2: [120]\n"
    )
    with pytest.raises(ConfigError) as exc:
        parse_config(text, tmp_path / "x.yaml", check_files=False)
    assert exc.value.problems == ["line 9: cameras[0].lines[0].p2: expected [x, y] with 2 numbers, got [120]"]


def test_password_comes_from_environment_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = merge(base(tmp_path), "mqtt.username", "node7")
    cfg = load_config(write(tmp_path, merge(doc, "mqtt.password_env", "NODE7_PW")))
    monkeypatch.setenv("NODE7_PW", "s3cret")
    assert cfg.mqtt.password() == "s3cret"
    monkeypatch.delenv("NODE7_PW")
    with pytest.raises(ConfigError, match="environment variable 'NODE7_PW' is not set"):
        cfg.mqtt.password()
    (tmp_path / "pw.txt").write_text("from-file\n")
    cfg = load_config(write(tmp_path, merge(doc, "mqtt.password_file", "pw.txt")))
    assert cfg.mqtt.password() == "from-file"


def test_environment_variables_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base(tmp_path)
    text = ("mqtt:\n  host: ${BROKER_HOST}\n  port: ${BROKER_PORT:-1883}\nmodel:\n  path: model.onnx\n"
            "cameras:\n  - id: cam1\n    source: clip.avi\n")
    monkeypatch.setenv("BROKER_HOST", "broker.city.lan")
    cfg = parse_config(text, tmp_path / "a.yaml")
    assert (cfg.mqtt.host, cfg.mqtt.port) == ("broker.city.lan", 1883)
    monkeypatch.setenv("BROKER_PORT", "8883")
    assert parse_config(text, tmp_path / "a.yaml").mqtt.port == 8883
    monkeypatch.delenv("BROKER_HOST")
    with pytest.raises(ConfigError, match="line 2: environment variable 'BROKER_HOST' is not set and has no default"):
        parse_config(text, tmp_path / "a.yaml")
