# edgeq: `make demo` and `make test` work from a fresh clone on Debian/Ubuntu (they install what they need).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := gcc make clang cmake gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm \
  clang-19 lld-19 picolibc-riscv64-unknown-elf qemu-system-misc
SHELL := /bin/bash
# CMSIS-NN for --kernels cmsis-nn/auto: the pinned copy beside the checkout when there is one (no network here).
SHARED_CMSIS_NN := $(abspath ../shared/third_party/CMSIS-NN)
ifneq ($(wildcard $(SHARED_CMSIS_NN)/Include/arm_nnfunctions.h),)
export EDGEQ_CMSIS_NN ?= $(SHARED_CMSIS_NN)
endif
# muRISCV-NN, CMSIS-NN's RISC-V port, for --kernels cmsis-nn on RISC-V boards: likewise.
SHARED_MURISCV_NN := $(abspath ../shared/third_party/muriscv-nn)
ifneq ($(wildcard $(SHARED_MURISCV_NN)/Include/muriscv_nn_functions.h),)
export EDGEQ_MURISCV_NN ?= $(SHARED_MURISCV_NN)
endif

.PHONY: demo test bench toolchains venv clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed

# Debian packages for the C toolchains the tests compile with; installed only when missing.
toolchains:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The example model on the emulated Cortex-M7 (the Nucleo-H7's core): built, run over the serial port, profiled.
demo: venv toolchains
	$(BIN)/edgeq inspect examples/digits_cnn_int8.tflite
	$(BIN)/edgeq build examples/digits_cnn_int8.tflite --board qemu-mps2-an500 -o build/demo
	$(BIN)/python examples/demo_inputs.py build/demo_inputs.npy
	$(BIN)/edgeq run build/demo --input build/demo_inputs.npy --output build/demo_outputs.npy --dequantize
	$(BIN)/python examples/show_outputs.py build/demo_outputs.npy
	$(BIN)/edgeq profile build/demo

# pytest exits 5 when it collected no test; that is not a failure of the suite.
test: venv toolchains
	$(BIN)/pytest -q -n 2 -p no:cacheprovider --durations=20 tests; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

bench: venv toolchains
	$(BIN)/python -m edgeq.bench --readme README.md

clean:
	rm -rf build
