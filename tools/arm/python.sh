#!/usr/bin/env bash
# Run the ARM Python that tools/arm/build-root.sh built, under qemu-aarch64, with the runtime-only
# install of mnist-edge on its path: `tools/arm/python.sh -m mnist_edge verify ...`.
#
# MNIST_EDGE_ARM_CPU picks the emulated CPU (default cortex-a72, a Raspberry Pi 4's; cortex-a76 is a
# Pi 5's). Avoid qemu 7.2's default `max`: its int8 arithmetic gives wrong answers for LiteRT's
# int8 kernels (a wrong-but-plausible 11 % accuracy), an emulator bug.
set -euo pipefail
CACHE=${MNIST_EDGE_ARM_HOME:-$HOME/.cache/mnist-edge/arm}
if [[ ! -x "$CACHE/root/usr/bin/python3.11" || ! -d "$CACHE/project/mnist_edge" ]]; then
    echo "arm: no ARM root in $CACHE: run \`make arm-check\` or tools/arm/build-root.sh first" >&2
    exit 2
fi
export PYTHONPATH="$CACHE/project:$CACHE/site"
export PYTHONNOUSERSITE=1
unset PYTHONHOME
exec qemu-aarch64 -cpu "${MNIST_EDGE_ARM_CPU:-cortex-a72}" -L "$CACHE/root" \
    "$CACHE/root/usr/bin/python3.11" "$@"
