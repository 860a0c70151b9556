# Two commands for a new user: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint install clean arm-tools arm-check browser mcu-tools mcu-demo

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[train,dev]"
	touch $(STAMP)

install: $(STAMP)

## The main job: data -> train -> export -> verify -> benchmark -> artifacts/report.md
demo: $(STAMP)
	$(VENV)/bin/mnist-edge pipeline --out artifacts

## Debian's Chromium, for the serve page's browser test (Playwright drives it; its own browser
## download cannot be used). Root only; the test is skipped, saying why, where it is missing.
browser:
	@dpkg -s chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

## The whole suite, slow end-to-end tests included (what CI runs).
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

## The fast unit tests only, for the edit-test loop.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

## qemu-user and debootstrap, for the emulated 64-bit ARM check (Debian; .ci/run calls this).
arm-tools:
	@command -v qemu-aarch64 >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 || { \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-user debootstrap >/dev/null; }

## Emulated 64-bit ARM (Raspberry Pi 4 CPU): build the arm64 root with the runtime-only install (cached in
## ~/.cache/mnist-edge/arm or $$MNIST_EDGE_ARM_HOME), then verify ARM_ARTIFACTS against their device bundle
## and predict a picture there, beside the same on this machine. ARM_LIMIT=0 verifies all 10,000 digits.
ARM_ARTIFACTS ?= artifacts
ARM_LIMIT ?= 1000
arm-check: $(STAMP) arm-tools
	$(PY) tools/arm/check.py $(ARM_ARTIFACTS) --limit $(ARM_LIMIT)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

## Cross compilers and emulators for the C target (examples/mcu, the Arm/aarch64 tests): apt-get,
## as root; installs only what is missing. (No newlib: the bare-metal code needs no C library.)
MCU_PACKAGES := gcc make gcc-arm-none-eabi qemu-system-arm qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
mcu-tools:
	@missing=$$(for p in $(MCU_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## The model as C on an emulated Cortex-M4F and Cortex-M3, trained first if there is none:
## `make mcu-demo` for the MLP in artifacts/, `make mcu-demo MCU_ARCH=cnn` for the CNN in artifacts-cnn/.
MCU_ARCH ?= mlp
MCU_DIR ?= $(if $(filter mlp,$(MCU_ARCH)),artifacts,artifacts-$(MCU_ARCH))
mcu-demo: $(STAMP) $(MCU_DIR)/model.keras
	$(VENV)/bin/mnist-edge export --format c --model $(MCU_DIR)/model.keras
	$(MAKE) -C examples/mcu run MODEL_DIR=$(abspath $(MCU_DIR)) PYTHON=$(abspath $(PY)) BOARD=mps2-an386
	$(MAKE) -C examples/mcu run MODEL_DIR=$(abspath $(MCU_DIR)) PYTHON=$(abspath $(PY)) BOARD=mps2-an385

$(MCU_DIR)/model.keras:
	$(VENV)/bin/mnist-edge pipeline --arch $(MCU_ARCH) --out $(MCU_DIR)
