#!/usr/bin/env bash
# Build (or reuse) a 64-bit ARM Linux to run mnist-edge in under qemu-aarch64, without running any
# ARM code on this machine while building it:
#
#   ROOT     Debian bookworm arm64 with Python 3.11: `debootstrap --foreign` downloads the packages,
#            `dpkg-deb -x` unpacks each one (binfmt_misc is usually not mounted, so debootstrap's
#            second stage could not run; an unpacked root is all qemu-aarch64 -L needs).
#   SITE     the runtime-only install's dependencies as aarch64 wheels, by
#            `pip install --target --platform ... --only-binary :all:` (no TensorFlow).
#   PROJECT  this checkout's own wheel, installed with --no-deps; rebuilt on every run.
#
# ROOT and SITE are cached under $MNIST_EDGE_ARM_HOME (default ~/.cache/mnist-edge/arm) and rebuilt
# only when their recipe changes (the package list, or the wheel's dependency list). Prints the
# cache folder on its last line. tools/arm/python.sh runs the ARM Python in it.
#
# Needs: debootstrap, dpkg-deb, qemu-aarch64 (Debian: apt-get install debootstrap qemu-user),
# network access to the Debian archive and PyPI on a cold cache, and $PYTHON (a Python >= 3.10
# with pip; default python3) for the cross-platform wheel install.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT_DIR=$(cd "$HERE/../.." && pwd)
CACHE=${MNIST_EDGE_ARM_HOME:-$HOME/.cache/mnist-edge/arm}
PYTHON=${PYTHON:-python3}
MIRROR=${MNIST_EDGE_ARM_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# The root's Python decides the wheels' tags: bookworm has 3.11 (glibc 2.36).
PY_VERSION=3.11
PACKAGES=python3,python3-venv,libstdc++6,libgomp1
PLATFORMS=(manylinux_2_28_aarch64 manylinux_2_27_aarch64 manylinux_2_17_aarch64 manylinux2014_aarch64)

say() { printf 'arm: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

for tool in debootstrap dpkg-deb qemu-aarch64; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed: run \`make arm-tools\` (Debian: apt-get install debootstrap qemu-user)"
done
mkdir -p "$CACHE"

# ---------------------------------------------------------------------------------------- ROOT
root_recipe="debootstrap $SUITE arm64 minbase $PACKAGES; cpuinfo v1"
if [[ -f "$CACHE/root/.recipe" && "$(cat "$CACHE/root/.recipe")" == "$root_recipe" ]]; then
    say "root: cached ($CACHE/root)"
else
    say "root: building Debian $SUITE arm64 in $CACHE/root (downloads its packages)"
    start=$SECONDS
    rm -rf "$CACHE/root.tmp"
    debootstrap --arch=arm64 --variant=minbase --foreign --include="$PACKAGES" \
        "$SUITE" "$CACHE/root.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $CACHE/debootstrap.log"
    # --foreign unpacks only the essential packages; --include'd ones wait for the second stage.
    for deb in "$CACHE"/root.tmp/var/cache/apt/archives/*.deb; do
        dpkg-deb -x "$deb" "$CACHE/root.tmp"
    done
    rm -f "$CACHE"/root.tmp/var/cache/apt/archives/*.deb
    [[ -x "$CACHE/root.tmp/usr/bin/python$PY_VERSION" ]] || die "the root has no python$PY_VERSION"
    # qemu-user (7.2) passes the host's /proc/cpuinfo through, and onnxruntime crashes on reading
    # an x86 one; qemu -L looks for every absolute path under the root first, so a file at
    # ROOT/proc/cpuinfo is what the ARM programs read instead: a Raspberry Pi 4's (4x Cortex-A72).
    mkdir -p "$CACHE/root.tmp/proc"
    cp "$HERE/cpuinfo-pi4.txt" "$CACHE/root.tmp/proc/cpuinfo"
    echo "$root_recipe" >"$CACHE/root.tmp/.recipe"
    rm -rf "$CACHE/root"
    mv "$CACHE/root.tmp" "$CACHE/root"
    say "root: built in $((SECONDS - start)) s"
fi

# ------------------------------------------------------------------------------------- PROJECT
# The wheel a user would install; its metadata lists the runtime dependencies (no extras).
start=$SECONDS
rm -rf "$CACHE/wheel.tmp" "$CACHE/source.tmp"
# From a copy of the sources: a build in the checkout would leave build/ behind, whose stale
# modules a later wheel would pick up.
mkdir -p "$CACHE/source.tmp"
cp -r "$PROJECT_DIR/pyproject.toml" "$PROJECT_DIR/README.md" "$PROJECT_DIR/mnist_edge" "$CACHE/source.tmp/"
: >"$CACHE/pip.log"
"$PYTHON" -m pip wheel --no-deps --wheel-dir "$CACHE/wheel.tmp" "$CACHE/source.tmp" >>"$CACHE/pip.log" 2>&1 \
    || die "building the project's wheel failed; see $CACHE/pip.log"
wheel=$(ls "$CACHE"/wheel.tmp/mnist_edge-*.whl)
platform_args=()
for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done
pip_arm=("$PYTHON" -m pip install --disable-pip-version-check --only-binary :all:
    --python-version "$PY_VERSION" --implementation cp "${platform_args[@]}")

# ---------------------------------------------------------------------------------------- SITE
requires=$("$PYTHON" - "$wheel" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    lines = z.read(meta).decode().splitlines()
print("\n".join(sorted(l for l in lines if l.startswith("Requires-Dist:") and "extra ==" not in l)))
EOF
)
site_recipe="$PY_VERSION ${PLATFORMS[*]}
$requires"
if [[ -f "$CACHE/site/.recipe" && "$(cat "$CACHE/site/.recipe")" == "$site_recipe" ]]; then
    say "site: cached ($CACHE/site)"
else
    say "site: installing the runtime's aarch64 wheels into $CACHE/site (downloads them from PyPI)"
    rm -rf "$CACHE/site.tmp"
    # The wheel itself with its dependencies, as `pip install mnist-edge` on the device would.
    "${pip_arm[@]}" --target "$CACHE/site.tmp" "$wheel" >>"$CACHE/pip.log" 2>&1 \
        || die "installing the aarch64 wheels failed; see $CACHE/pip.log"
    rm -rf "$CACHE"/site.tmp/mnist_edge "$CACHE"/site.tmp/mnist_edge-*.dist-info "$CACHE/site.tmp/bin"
    echo "$site_recipe" >"$CACHE/site.tmp/.recipe"
    rm -rf "$CACHE/site"
    mv "$CACHE/site.tmp" "$CACHE/site"
fi

rm -rf "$CACHE/project.tmp"
"${pip_arm[@]}" --no-deps --target "$CACHE/project.tmp" "$wheel" >>"$CACHE/pip.log" 2>&1 \
    || die "installing the project's wheel failed; see $CACHE/pip.log"
rm -rf "$CACHE/project" "$CACHE/wheel.tmp" "$CACHE/source.tmp"
mv "$CACHE/project.tmp" "$CACHE/project"
say "project: $(basename "$wheel") installed in $((SECONDS - start)) s"
echo "$CACHE"
