#!/usr/bin/env bash
# Installs the system packages mirrorlab needs on a fresh Debian machine: the libraries the
# desktop app links at run time (X11/Wayland, xkbcommon, Vulkan/GL software rendering) and
# Xvfb for the headless GUI tests. Safe to run again; does nothing when all are present.
set -euo pipefail
pkgs=(
  pkg-config libx11-dev libxkbcommon-dev libxkbcommon-x11-0 libwayland-dev
  libxcursor1 libxrandr2 libxi6 libx11-xcb1 libgl1 libegl1 libvulkan1 mesa-vulkan-drivers
  libgl1-mesa-dri xvfb xauth imagemagick xdotool
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "installed: ${missing[*]}"
fi
