"""The host end of the serial protocol, over pyserial (a QEMU pseudo-terminal or a real /dev/ttyACM0)."""
from __future__ import annotations

import struct
import time
import zlib

import serial

from edgeq.errors import EdgeqError
from edgeq.targets import protocol as P
from edgeq.targets.process import timeout_for

WRITE_TIMEOUT = 30.0

MAX_REPLY = 64 << 20


class FrameError(Exception):
    """A reply frame that arrived damaged (bad CRC or impossible length)."""


class LinkTimeout(Exception):
    pass


class SerialLink:
    def __init__(self, port: str, baud: int = 115200, retries: int = 2):
        try:
            # a board (or an emulator on a busy machine) reads a large input slowly: 30 s, or EDGEQ_TIMEOUT
            self.ser = serial.Serial(port, baud, timeout=0.2, write_timeout=timeout_for(WRITE_TIMEOUT))
        except (serial.SerialException, OSError) as e:
            raise EdgeqError(f"Cannot open the serial port {port}: {e}. Check the board is connected (or the "
                             "emulator running) and that you may open the port.") from None
        self.port = port
        self.retries = retries

    def close(self) -> None:
        self.ser.close()

    def __enter__(self) -> "SerialLink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write_raw(self, data: bytes) -> None:
        try:
            self.ser.write(data)
            self.ser.flush()
        except (serial.SerialException, OSError) as e:  # includes the write timeout of a board that stopped reading
            raise EdgeqError(f"Writing to the serial port {self.port} failed: {e}. The board stopped reading (hung "
                             "or reset) or was disconnected; reset it, or restart the emulator, and try again.") from None

    def _read_exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            if time.monotonic() > deadline:
                raise LinkTimeout()
            buf += self.ser.read(min(n - len(buf), 1 << 16))
        return bytes(buf)

    def read_frame(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        prev = None
        while True:  # resynchronise on SYNC0 SYNC1, skipping anything else
            b = self._read_exact(1, deadline)[0]
            if prev == P.SYNC[0] and b == P.SYNC[1]:
                break
            prev = b
        length_bytes = self._read_exact(4, deadline)
        (length,) = struct.unpack("<I", length_bytes)
        if length == 0 or length > MAX_REPLY:
            raise FrameError(f"a reply announced {length} bytes")
        payload = self._read_exact(length, deadline)
        (crc,) = struct.unpack("<I", self._read_exact(4, deadline))
        if crc != zlib.crc32(length_bytes + payload):
            raise FrameError(f"a reply of {length} bytes failed its CRC check")
        return payload

    def request(self, payload: bytes, timeout: float) -> bytes:
        """Sends one command and returns the reply's payload after its command byte. Damaged frames in
        either direction and silent devices are retried; then a clear error is raised."""
        cmd = payload[0]
        problems = []
        for _ in range(self.retries + 1):
            self.ser.reset_input_buffer()
            self.write_raw(P.frame(payload))
            try:
                reply = self.read_frame(timeout)
            except LinkTimeout:
                problems.append(f"no reply within {timeout:g} s")
                continue
            except FrameError as e:
                problems.append(str(e))
                continue
            if reply[0] == P.REPLY_ERROR:
                code = reply[1] if len(reply) > 1 else 0
                problems.append(f"the device answered error {code}: {P.ERRORS.get(code, 'unknown error')}")
                if code in (P.ERR_CRC, P.ERR_LENGTH):
                    continue
                break
            if reply[0] != cmd | 0x80:
                problems.append(f"the device answered command 0x{reply[0]:02x} to 0x{cmd:02x}")
                continue
            return reply[1:]
        raise EdgeqError(f"Serial link on {self.port} failed for command 0x{cmd:02x} after {len(problems)} "
                         f"attempt(s): {'; '.join(problems)}. Check the cable and port, that the board runs "
                         "firmware built by this edgeq (reflash with `edgeq flash`), and that nothing else "
                         "holds the port.")

    def hello(self, timeout: float = 3.0) -> P.Hello:
        return P.Hello.parse(self.request(bytes([P.CMD_HELLO]), timeout))

    def infer(self, data: bytes, timeout: float) -> tuple[int, int, bytes]:
        reply = self.request(bytes([P.CMD_INFER]) + data, timeout)
        status, cycles = struct.unpack_from("<BQ", reply)
        return status, cycles, reply[9:]

    def profile(self, runs: int, layers: int, timeout: float) -> tuple[int, int, list[int]]:
        reply = self.request(bytes([P.CMD_PROFILE]) + struct.pack("<H", runs), timeout)
        status, cycles = struct.unpack_from("<BQ", reply)
        return status, cycles, list(struct.unpack_from(f"<{layers}Q", reply, 9))
