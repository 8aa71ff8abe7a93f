"""Detections -> Tracks: Kalman-filter multi-object tracking."""

from edge_agent.tracking.kalman import KalmanBoxModel
from edge_agent.tracking.tracker import Tracker, TrackerConfig, iou_matrix

__all__ = ["KalmanBoxModel", "Tracker", "TrackerConfig", "iou_matrix"]
