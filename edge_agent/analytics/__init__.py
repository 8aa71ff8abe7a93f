"""Tracks -> FrameEvents: speeds, zones, queues, turning movements and incidents of one camera.

``camera.CameraAnalytics`` is the entry point; ``kinematics`` fits ground
speeds, ``zones`` watches polygons, ``movements`` counts origin -> destination
pairs. Line crossings themselves are :mod:`edge_agent.counting`.
"""

from edge_agent.analytics.camera import CameraAnalytics, analytics_layout

__all__ = ["CameraAnalytics", "analytics_layout"]
