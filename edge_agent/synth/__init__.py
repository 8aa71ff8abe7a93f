"""Synthetic traffic scenes with exact ground truth (numpy and OpenCV only).

``render_clip(seed, seconds, fps, out_dir)`` renders a seeded clip of a
four-arm junction seen from a pole-mounted camera, with MOTChallenge boxes,
line crossings, turning movements, speeds and the ground homography;
``render_dataset`` writes YOLO-format stills for training.
"""

from edge_agent.synth.camera import Camera, apply_homography
from edge_agent.synth.clip import (
    NAMES,
    ClipTruth,
    Crossing,
    LineTruth,
    Scene,
    TrackTruth,
    agent_config_yaml,
    counting_lines,
    default_camera,
    line_crossings,
    random_camera,
    render_clip,
)
from edge_agent.synth.world import SignalPlan, TrafficConfig

__all__ = ["NAMES", "Camera", "ClipTruth", "Crossing", "LineTruth", "Scene", "SignalPlan", "TrackTruth",
           "TrafficConfig", "agent_config_yaml", "apply_homography", "counting_lines", "default_camera",
           "line_crossings", "random_camera", "render_clip"]
