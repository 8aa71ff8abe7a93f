"""``edge-agent export``: its refusals (always, without Ultralytics) and a real export (with the export extra)."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys

import pytest

from edge_agent.cli import main
from edge_agent.export import EXIT_EXPORT, INSTALL_HINT, parse_imgsz

HAVE_ULTRALYTICS = importlib.util.find_spec("ultralytics") is not None
needs_ultralytics = pytest.mark.skipif(
    not HAVE_ULTRALYTICS,
    reason=f"Ultralytics is not installed: the real export needs the export extra ({INSTALL_HINT}), "
           "which CI and the camera node do not install")


@pytest.fixture(autouse=True)
def _restore_yolo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # the command sets YOLO_OFFLINE / YOLO_AUTOINSTALL for Ultralytics; keep them out of other tests
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    monkeypatch.delenv("YOLO_AUTOINSTALL", raising=False)


def export(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["export", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_refuses_a_missing_file(tmp_path, capsys):
    rc, _, err = export(capsys, str(tmp_path / "runs" / "best.pt"))
    assert rc == EXIT_EXPORT
    assert "runs/best.pt: no such file" in err


def test_refuses_a_bare_name_that_ultralytics_would_download(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)            # no yolov8n.pt here
    rc, _, err = export(capsys, "yolov8n.pt")
    assert rc == EXIT_EXPORT
    assert "yolov8n.pt: no such file" in err and "never downloads" in err and "from the internet" in err
    assert list(tmp_path.iterdir()) == []  # nothing fetched, nothing written


def test_refuses_a_url_and_other_files(tmp_path, capsys):
    rc, _, err = export(capsys, "https://example.com/yolov8n.pt")
    assert rc == EXIT_EXPORT and "a URL" in err and "never downloads" in err
    rc, _, err = export(capsys, "yolo11n.yaml", "--nms", "--dynamic-batch")
    assert rc == EXIT_EXPORT and "choose one" in err
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"")
    rc, _, err = export(capsys, str(onnx_file))
    assert rc == EXIT_EXPORT and "expected an Ultralytics checkpoint (.pt) or architecture (.yaml)" in err


def test_names_the_extra_when_ultralytics_is_missing(tmp_path, monkeypatch, capsys):
    pt = tmp_path / "best.pt"
    pt.write_bytes(b"a checkpoint")
    monkeypatch.setitem(sys.modules, "ultralytics", None)   # `import ultralytics` raises ImportError
    rc, _, err = export(capsys, str(pt), "--int8")
    assert rc == EXIT_EXPORT
    assert "needs Ultralytics and PyTorch" in err and INSTALL_HINT in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_imgsz_argument():
    assert parse_imgsz("640") == 640
    assert parse_imgsz("384x640") == (384, 640) == parse_imgsz("384,640")
    for bad in ("", "x640", "0", "384x640x3", "big"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_imgsz(bad)
    with pytest.raises(SystemExit):
        main(["export", "best.pt", "--imgsz", "wide"])


def test_the_cli_does_not_import_ultralytics_or_torch():
    code = ("import sys; from edge_agent.cli import build_parser; build_parser(); "
            "heavy = {'ultralytics', 'torch', 'onnx'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_ultralytics
@pytest.mark.slow
def test_real_export_checkpoint_and_architecture(tmp_path, capsys):
    """A checkpoint (random weights, saved here: nothing downloaded) and a built-in architecture name."""
    from ultralytics import YOLO

    from edge_agent.detection import Detector

    ckpt = tmp_path / "weights" / "best.pt"
    ckpt.parent.mkdir()
    YOLO("yolo11n.yaml").save(ckpt)
    rc, out, err = export(capsys, str(ckpt), "--imgsz", "128x160")
    assert rc == 0, err
    assert "detect layout, 80 classes, input 128x160 float32" in out
    assert "fixed batch 1" in out
    onnx_file = ckpt.with_name("best.onnx")           # default output: next to the checkpoint
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["best.onnx", "best.pt"]
    det = Detector(onnx_file, device="cpu")
    assert det.input_size == (128, 160) and len(det.names) == 80

    small = tmp_path / "n-int8.onnx"
    rc, out, err = export(capsys, "yolo11n.yaml", "--imgsz", "96", "--int8", "--dynamic-batch", "-o", str(small))
    assert rc == 0, err
    assert "detect layout, 80 classes, input 96x96" in out and "int8 weights" in out
    assert "dynamic batch" in out
    det = Detector(small, device="cpu")
    batch, _, h, w = det.session.get_inputs()[0].shape
    assert isinstance(batch, str) and (h, w) == (96, 96)
    assert small.stat().st_size < onnx_file.stat().st_size / 2
