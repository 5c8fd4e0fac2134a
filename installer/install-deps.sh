#!/usr/bin/env bash
# Installs every build and test dependency of Quench from Debian's packages.
# Idempotent and non-interactive: packages already present are skipped, so running it twice is safe.
# Fails loudly, naming the package, when one cannot be installed.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # engine
  libtorch-dev libopenblas0-pthread
  libhdf5-dev hdf5-tools libssl-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libsentencepiece-dev libpcre2-dev libutf8proc-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # GUI
  qt6-base-dev qt6-charts-dev libqt6opengl6-dev qt6-svg-dev libxkbcommon-dev
  libgl-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
for p in "${missing[@]}"; do
  if ! apt-cache show "$p" >/dev/null 2>&1; then
    echo "install-deps: ERROR: package '$p' is not available from the configured apt sources" >&2
    exit 1
  fi
done
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/quench-install-deps.log 2>&1; then
  tail -n 30 /tmp/quench-install-deps.log >&2
  echo "install-deps: ERROR: apt-get install failed for: ${missing[*]} (log: /tmp/quench-install-deps.log)" >&2
  exit 1
fi
echo "install-deps: done"
