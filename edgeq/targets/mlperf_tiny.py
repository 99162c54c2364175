"""MLPerf Tiny (EEMBC ULPMark-ML) performance mode: which benchmark a model is, how its firmware harness
(templates/firmware/mlperf_harness.c.j2) takes inputs and prints results, and a host client for the protocol.

The protocol, as the reference submissions of mlcommons/tiny speak it on the serial port: ASCII commands
ending in '%' (`name`, `profile`, `timestamp`, `db load N`, `db HHHH..`, `db print`, `infer N W`, `results`,
`help`); each reply is lines ending in CR LF, the last `m-ready`. `infer N W` runs W warm-up inferences, then
prints `m-lap-us-T` before and after N timed ones, then the results line `m-results-[...]`.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import numpy as np

from edgeq.errors import EdgeqError

FW_VERSION = "ULPMark for tinyML Firmware V0.0.1"  # what the reference firmware's `profile` reports
VENDOR = "edgeq"


@dataclass(frozen=True)
class Benchmark:
    name: str  # the m-model-[...] name
    input: str  # what `db` carries: "float32" features, "uint8" pixels, or "int8" as is
    results: str  # th_results' format: "mse" (ad01's score), "fixed3" (%0.3f each), "trunc3" (0.%d%d%d each)
    trailing_comma: bool = False  # the vww01 reference prints a comma after the last value too
    shape: tuple[int, ...] = ()  # the benchmark model's input shape, to recognise it


BENCHMARKS = {
    "ad01": Benchmark("ad01", "float32", "mse", shape=(1, 640)),
    "kws01": Benchmark("kws01", "int8", "trunc3", shape=(1, 49, 10, 1)),
    "ic01": Benchmark("ic01", "uint8", "fixed3", shape=(1, 32, 32, 3)),
    "vww01": Benchmark("vww01", "uint8", "fixed3", trailing_comma=True, shape=(1, 96, 96, 3)),
}


def choose(inputs: list[dict], outputs: list[dict], requested: str | None, model_name: str) -> Benchmark:
    """The benchmark for a model: `requested` (--mlperf-model), else the one whose input shape it has."""
    if len(inputs) != 1 or len(outputs) != 1:
        raise EdgeqError(f"{model_name} has {len(inputs)} inputs and {len(outputs)} outputs; MLPerf Tiny's harness "
                         "serves models with one input and one output.")
    shape = tuple(inputs[0]["shape"])
    if requested is None:
        found = [b for b in BENCHMARKS.values() if b.shape == shape]
        if not found:
            raise EdgeqError(f"{model_name}'s input shape {list(shape)} is none of MLPerf Tiny's benchmarks' "
                             f"({', '.join(f'{b.name} {list(b.shape)}' for b in BENCHMARKS.values())}); name the "
                             "benchmark with --mlperf-model.")
        bench = found[0]
    elif requested not in BENCHMARKS:
        raise EdgeqError(f"Unknown --mlperf-model '{requested}'; MLPerf Tiny's are {', '.join(BENCHMARKS)}.")
    else:
        bench = BENCHMARKS[requested]
    n_in, n_out = int(np.prod(shape)), int(np.prod(outputs[0]["shape"]))
    if bench.results == "mse" and n_in != n_out:
        raise EdgeqError(f"{bench.name} scores the mean squared error between input and output, but {model_name} has "
                         f"{n_in} input and {n_out} output values.")
    return bench


def db_bytes(bench: Benchmark, inputs: list[dict]) -> int:
    """Bytes the host loads with `db` for one input."""
    n = int(np.prod(inputs[0]["shape"]))
    return 4 * n if bench.input == "float32" else n


# --- what the firmware computes, in numpy (float32 steps in the firmware's order) --------------------------

def quantize_float(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The reference's QuantizeFloatToInt8: round(x / scale) half away from zero, plus the zero point, clamped."""
    r = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64)
    q = np.sign(r) * np.floor(np.abs(r) + 0.5) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(q, np.int32) - zero_point).astype(np.float32) * np.float32(scale)


def _c_int(v) -> int:  # C's float -> int conversion: toward zero
    return int(math.trunc(float(v)))


def _c_mod10(a: int) -> int:  # C's % keeps the dividend's sign
    return a - 10 * int(a / 10)


def results_line(bench: Benchmark, output: np.ndarray, scale: float, zero_point: int,
                 input_float: np.ndarray | None = None) -> str:
    """The m-results line the reference submission prints for this output (int8), as edgeq's firmware does."""
    y = dequantize(np.asarray(output).reshape(-1), scale, zero_point)
    if bench.results == "mse":
        x = np.asarray(input_float, np.float32).reshape(-1)
        acc = np.float32(0)
        for i in range(len(y)):
            d = np.float32(y[i] - x[i])
            acc = np.float32(acc + np.float32(d * d))
        return f"m-results-[{float(np.float32(acc / np.float32(len(y)))):.3f}]"
    if bench.results == "trunc3":
        parts = [f"0.{_c_int(v * np.float32(10))}{_c_mod10(_c_int(v * np.float32(100)))}"
                 f"{_c_mod10(_c_int(v * np.float32(1000)))}" for v in y]
    else:
        parts = [f"{float(v):.3f}" for v in y]
    return "m-results-[" + ",".join(parts) + ("," if bench.trailing_comma else "") + "]"


# --- host side ---------------------------------------------------------------------------------------------

@dataclass
class InferResult:
    lines: list[str]
    start_us: int
    end_us: int
    results: list[float]
    results_line: str

    @property
    def elapsed_us(self) -> int:
        return self.end_us - self.start_us


class MlperfDut:
    """The device under test over a serial port (pyserial: a QEMU pseudo-terminal or a real /dev/ttyACM0),
    driven as MLPerf Tiny's runner drives it: one '%'-terminated command, then lines until m-ready."""

    def __init__(self, port: str, baud: int = 115200, chunk: int = 31):
        import serial
        try:
            self.ser = serial.Serial(port, baud, timeout=0.1)
        except (serial.SerialException, OSError) as e:
            raise EdgeqError(f"Cannot open the serial port {port}: {e}.") from None
        self.chunk = chunk  # bytes per `db` command, as the runner sends them
        self._buf = b""

    def close(self) -> None:
        self.ser.close()

    def __enter__(self) -> "MlperfDut":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                raise EdgeqError(f"No line from the device within {timeout:g} s (so far: {self._buf[-200:]!r}).")
            self._buf += self.ser.read(self.ser.in_waiting or 1)
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace").strip("\r\0")

    def wait_ready(self, timeout: float = 10.0) -> list[str]:
        lines = []
        while True:
            line = self.read_line(timeout)
            lines.append(line)
            if line == "m-ready":
                return lines

    def command(self, text: str, timeout: float = 10.0) -> list[str]:
        self.ser.write(text.encode() + b"%")
        self.ser.flush()
        return self.wait_ready(timeout)

    def name(self) -> str:
        return _field(self.command("name"), r"m-name-dut-\[([^]]+)\]")

    def model(self) -> str:
        return _field(self.command("profile"), r"m-model-\[([^]]+)\]")

    def load(self, data: bytes) -> list[str]:
        lines = self.command(f"db load {len(data)}")
        for i in range(0, len(data), self.chunk):
            lines += self.command("db " + data[i:i + self.chunk].hex())
        return lines

    def infer(self, n: int, warmups: int, timeout: float = 300.0) -> InferResult:
        lines = self.command(f"infer {n} {warmups}", timeout)
        laps = [int(m.group(1)) for line in lines if (m := re.fullmatch(r"m-lap-us-(\d+)", line))]
        res = [line for line in lines if line.startswith("m-results-[")]
        if len(laps) != 2 or len(res) != 1:
            raise EdgeqError(f"`infer {n} {warmups}` did not answer two m-lap-us lines and one m-results line: {lines}")
        values = [float(v) for v in res[0][len("m-results-["):-1].split(",") if v.strip()]
        return InferResult(lines, laps[0], laps[1], values, res[0])


def _field(lines: list[str], pattern: str) -> str:
    for line in lines:
        m = re.fullmatch(pattern, line)
        if m:
            return m.group(1)
    raise EdgeqError(f"The device did not answer {pattern!r}: {lines}")
