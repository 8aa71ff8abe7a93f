#!/usr/bin/env bash
# Install the edge agent on an edge box as a systemd service. Idempotent: run it again to upgrade.
#
#   sudo bash scripts/install-edge.sh                 # CPU build
#   sudo bash scripts/install-edge.sh --gpu           # onnxruntime-gpu (CUDA / TensorRT)
#
# What it does:
#   - creates the unprivileged system user 'edge-agent' (member of 'video' for USB cameras);
#   - creates a virtual environment in PREFIX/venv and installs this package into it;
#   - copies configs/example-rtsp.yaml to CONFIG_DIR/config.yaml unless a config is already there
#     (an existing config is never overwritten), and CONFIG_DIR/env for secrets (mode 600);
#   - writes the systemd unit edge-agent.service (restart on failure, state in /var/lib/edge-agent,
#     read-only system), then reloads systemd and enables the service when systemd is running.
#
# Options (for packaging and tests): --prefix DIR, --config-dir DIR, --unit-dir DIR, --user NAME,
# --no-user (do not create the user), --no-systemd (do not call systemctl), --gpu.
set -euo pipefail

prefix=/opt/edge-agent
config_dir=/etc/edge-agent
unit_dir=/etc/systemd/system
user=edge-agent
make_user=1
use_systemd=1
extra="[agent]"
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --config-dir) config_dir=$2; shift 2 ;;
    --unit-dir) unit_dir=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --no-user) make_user=0; shift ;;
    --no-systemd) use_systemd=0; shift ;;
    --gpu) extra="[gpu]"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "install-edge: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "$make_user" = 1 ] && ! id -u "$user" >/dev/null 2>&1; then
  echo "install-edge: creating system user $user"
  useradd --system --no-create-home --shell /usr/sbin/nologin --groups video "$user"
fi

mkdir -p "$prefix" "$config_dir" "$unit_dir"
if [ ! -x "$prefix/venv/bin/python" ]; then
  echo "install-edge: creating $prefix/venv"
  python3 -m venv "$prefix/venv"
fi
echo "install-edge: installing edge-agent$extra into $prefix/venv"
"$prefix/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$prefix/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$repo$extra"

if [ ! -f "$config_dir/config.yaml" ]; then
  cp "$repo/configs/example-rtsp.yaml" "$config_dir/config.yaml"
  echo "install-edge: wrote $config_dir/config.yaml (an example: edit cameras, lines and the broker)"
else
  echo "install-edge: keeping the existing $config_dir/config.yaml"
fi
if [ ! -f "$config_dir/env" ]; then
  printf '# Secrets for edge-agent, read by systemd (EnvironmentFile). Example:\n# EDGE_MQTT_PASSWORD=...\n' \
    > "$config_dir/env"
  chmod 600 "$config_dir/env"
fi

cat > "$unit_dir/edge-agent.service" <<UNIT
[Unit]
Description=Traffic-camera edge agent (counts by class and direction, published over MQTT)
Documentation=file://$repo/README.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$user
Group=$user
SupplementaryGroups=video
EnvironmentFile=-$config_dir/env
ExecStartPre=$prefix/venv/bin/edge-agent check-config $config_dir/config.yaml
ExecStart=$prefix/venv/bin/edge-agent --log-format json run -c $config_dir/config.yaml
Restart=on-failure
RestartSec=5
TimeoutStopSec=60
StateDirectory=edge-agent
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true

[Install]
WantedBy=multi-user.target
UNIT
echo "install-edge: wrote $unit_dir/edge-agent.service"

if [ "$use_systemd" = 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable edge-agent.service
  echo "install-edge: enabled; start with: systemctl start edge-agent; logs: journalctl -u edge-agent -f"
else
  echo "install-edge: systemd not used here; run $prefix/venv/bin/edge-agent run -c $config_dir/config.yaml"
fi
