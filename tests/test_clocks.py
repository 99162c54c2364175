"""The real boards' clock set-up: the register steps the startup code performs are replayed on the reset
values of the registers, and the resulting clock tree is decoded with the reference manuals' formulas and
checked against their limits (RM0433 STM32H743, RM0432 STM32L4R5, RM0390 STM32F446, nRF52840 PS)."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeq.errors import EdgeqError
from edgeq.targets.boards import get_board
from edgeq.targets.clocks import clock_plan, uart_divisor

ROOT = Path(__file__).resolve().parents[1]
REAL = ["nucleo-h743zi", "nucleo-l4r5zi", "nucleo-f446re", "nrf52840dk"]
MHZ = 1_000_000

# Reset values from the reference manuals' register descriptions.
RESET = {
    "nucleo-h743zi": {"RCC_CR": 0x00000025, "RCC_CFGR": 0, "RCC_D1CFGR": 0, "RCC_D2CFGR": 0, "RCC_D3CFGR": 0,
                      "RCC_PLLCKSELR": 0x02020200, "RCC_PLLCFGR": 0x01FF0000, "RCC_PLL1DIVR": 0x01010280,
                      "PWR_CR3": 0x00000006, "PWR_CSR1": 0, "PWR_D3CR": 0x00004000, "FLASH_ACR": 0x00000037},
    "nucleo-l4r5zi": {"RCC_CR": 0x00000063, "RCC_CFGR": 0, "RCC_PLLCFGR": 0x00001000, "RCC_APB1ENR1": 0,
                      "PWR_CR1": 0x00000200, "PWR_SR2": 0, "PWR_CR5": 0x00000100, "FLASH_ACR": 0x00000600},
    "nucleo-f446re": {"RCC_CR": 0x00000083, "RCC_CFGR": 0, "RCC_PLLCFGR": 0x24003010, "RCC_APB1ENR": 0,
                      "PWR_CR": 0x0000C000, "PWR_CSR": 0, "FLASH_ACR": 0},
    "nrf52840dk": {"CLOCK_TASKS_HFCLKSTART": 0, "CLOCK_EVENTS_HFCLKSTARTED": 0, "NVMC_ICACHECNF": 0},
}
READBACK = {"FLASH_ACR"}


def replay(plan, reset: dict) -> tuple[dict, list]:
    """Runs the plan's steps on a model of the registers. A wait on FLASH_ACR must already hold (a read-back of
    the wait states written); any other wait stands for the hardware's ready flag or event and sets it.
    Returns the final registers and a trace of (step index, register, value after)."""
    regs, trace = dict(reset), []
    for i, s in enumerate(plan.steps):
        if s.op in ("delay", "call"):
            trace.append((i, s.name, None))
            continue
        assert s.name in regs, f"step {i} writes {s.name}, which the test does not know"
        if s.op == "write":
            regs[s.name] = s.value
        elif s.op == "modify":
            assert s.value & ~s.mask == 0, f"step {i} sets bits outside its mask"
            regs[s.name] = (regs[s.name] & ~s.mask) | s.value
        elif s.op == "wait":
            if s.name in READBACK:
                assert regs[s.name] & s.mask == s.value, f"step {i}: read-back of {s.name} would never match"
            else:
                regs[s.name] = (regs[s.name] & ~s.mask) | s.value
        trace.append((i, s.name, regs[s.name]))
    return regs, trace


def first(trace, name, pred) -> int:
    return next(i for i, n, v in trace if n == name and v is not None and pred(v))


def ahb_div(code: int) -> int:  # HPRE / D1CPRE encoding: 0xxx = 1, 1000 = 2 ... 1111 = 512
    return 1 if code < 8 else [2, 4, 8, 16, 64, 128, 256, 512][code - 8]


def apb_div(code: int) -> int:  # PPRE encoding: 0xx = 1, 100 = 2 ... 111 = 16
    return 1 if code < 4 else [2, 4, 8, 16][code - 4]


def check_baud(board, plan, uart_hz: int) -> None:
    baud = board.uart["baud"]
    assert plan.uart_hz == uart_hz
    real = {"stm32_lpuart": 256 * uart_hz / plan.uart_divisor,  # RM0432: baud = 256 fck / BRR
            "nrf_uart": plan.uart_divisor * uart_hz / 2 ** 32}.get(board.uart["driver"], uart_hz / plan.uart_divisor)
    assert abs(real - baud) / baud < 0.005, (real, baud)


def test_stm32h743_at_400_mhz():
    board = get_board("nucleo-h743zi")
    plan = clock_plan(board, "max")
    r, trace = replay(plan, RESET[board.name])
    assert r["RCC_PLLCKSELR"] & 3 == 0  # PLLSRC = HSI
    hsi = 64 * MHZ >> ((r["RCC_CR"] >> 3) & 3)
    divm = (r["RCC_PLLCKSELR"] >> 4) & 0x3F
    ref = hsi / divm
    rge = (r["RCC_PLLCFGR"] >> 2) & 3
    assert [(1, 2), (2, 4), (4, 8), (8, 16)][rge][0] * MHZ <= ref <= [(1, 2), (2, 4), (4, 8), (8, 16)][rge][1] * MHZ
    assert r["RCC_PLLCFGR"] & 3 == 0 and ref >= 2 * MHZ  # integer mode, wide VCO (needs >= 2 MHz in)
    divn = (r["RCC_PLL1DIVR"] & 0x1FF) + 1
    divp = ((r["RCC_PLL1DIVR"] >> 9) & 0x7F) + 1
    vco = ref * divn
    assert 4 <= divn <= 512 and 192 * MHZ <= vco <= 836 * MHZ and divp % 2 == 0
    assert r["RCC_PLLCFGR"] >> 16 & 1 and r["RCC_CR"] >> 24 & 1  # DIVP1EN, PLL1ON
    assert r["RCC_CFGR"] & 7 == 3  # sys_ck = pll1_p_ck
    cpu = vco / divp / ahb_div((r["RCC_D1CFGR"] >> 8) & 0xF)
    hclk = cpu / ahb_div(r["RCC_D1CFGR"] & 0xF)
    apbs = [hclk / apb_div((r["RCC_D1CFGR"] >> 4) & 7), hclk / apb_div((r["RCC_D2CFGR"] >> 4) & 7),
            hclk / apb_div((r["RCC_D2CFGR"] >> 8) & 7), hclk / apb_div((r["RCC_D3CFGR"] >> 4) & 7)]
    assert (r["PWR_D3CR"] >> 14) & 3 == 3  # VOS1: 400 MHz CPU, 200 MHz AXI/AHB, 100 MHz APB (both revisions)
    assert cpu == 400 * MHZ == plan.core_hz == board.clock_hz and hclk <= 200 * MHZ and max(apbs) <= 100 * MHZ
    # RM0433 Table 17, VOS1: AXI clock -> (LATENCY, WRHIGHFREQ)
    latency, wrhighfreq = r["FLASH_ACR"] & 0xF, (r["FLASH_ACR"] >> 4) & 3
    need = next((lat, wr) for top, lat, wr in [(70, 0, 0), (140, 1, 1), (185, 2, 1), (210, 2, 2), (225, 3, 2)]
                if hclk <= top * MHZ)
    assert latency >= need[0] and wrhighfreq == need[1]
    assert r["PWR_CR3"] & 7 == 2  # LDO, supply configuration locked
    # order: supply and VOS ready, and the wait states, before the switch to the PLL
    switch = first(trace, "RCC_CFGR", lambda v: v & 7 == 3)
    assert first(trace, "PWR_D3CR", lambda v: v >> 13 & 1) < switch
    assert first(trace, "FLASH_ACR", lambda v: v & 0xF == latency) < switch
    assert first(trace, "RCC_CR", lambda v: v >> 25 & 1) < switch
    assert plan.caches == ["icache", "dcache"] and trace[-1][1] == "eq_m7_enable_caches"
    check_baud(board, plan, int(apbs[1]))  # USART3's kernel clock: rcc_pclk1 (D2CCIP2R reset selection)


def test_stm32l4r5_at_120_mhz_range1_boost():
    board = get_board("nucleo-l4r5zi")
    plan = clock_plan(board, "max")
    r, trace = replay(plan, RESET[board.name])
    c = r["RCC_PLLCFGR"]
    assert c & 3 == 2  # HSI16
    ref = 16 * MHZ / (((c >> 4) & 0xF) + 1)
    n = (c >> 8) & 0x7F
    vco = ref * n
    pllr = 2 * (((c >> 25) & 3) + 1)
    assert 2.66 * MHZ <= ref <= 16 * MHZ and 8 <= n <= 127 and 64 * MHZ <= vco <= 344 * MHZ and c >> 24 & 1
    assert r["RCC_CFGR"] & 3 == 3 and r["RCC_CR"] >> 24 & 1
    hclk = vco / pllr / ahb_div((r["RCC_CFGR"] >> 4) & 0xF)
    pclk1 = hclk / apb_div((r["RCC_CFGR"] >> 8) & 7)
    pclk2 = hclk / apb_div((r["RCC_CFGR"] >> 11) & 7)
    assert (r["PWR_CR1"] >> 9) & 3 == 1 and not r["PWR_CR5"] >> 8 & 1  # range 1, boost (R1MODE = 0)
    assert hclk == 120 * MHZ == plan.core_hz and max(pclk1, pclk2) <= 120 * MHZ
    need = next(ws for ws, top in enumerate([20, 40, 60, 80, 100, 120]) if hclk <= top * MHZ)  # RM0432, boost
    assert r["FLASH_ACR"] & 0xF >= need == 5 and (r["FLASH_ACR"] >> 8) & 7 == 7  # prefetch, I- and D-cache
    # RM0432 5.1.8: HCLK halved before switching above 80 MHz in boost, full speed only after >= 1 us
    switch = first(trace, "RCC_CFGR", lambda v: v & 3 == 3)
    halved = [i for i, n_, v in trace if n_ == "RCC_CFGR" and v is not None and (v >> 4) & 0xF == 0b1000]
    assert halved and halved[0] < switch and first(trace, "PWR_CR5", lambda v: not v >> 8 & 1) < switch
    assert trace[switch + 2][1] == "delay" and first(trace, "FLASH_ACR", lambda v: v & 0xF == 5) < switch
    check_baud(board, plan, int(pclk1))  # LPUART1SEL reset selection: PCLK1
    assert 0x300 <= plan.uart_divisor <= 0xFFFFF


def test_stm32f446_at_180_mhz_overdrive():
    board = get_board("nucleo-f446re")
    plan = clock_plan(board, "max")
    r, trace = replay(plan, RESET[board.name])
    c = r["RCC_PLLCFGR"]
    assert not c >> 22 & 1  # HSI
    m, n = c & 0x3F, (c >> 6) & 0x1FF
    ref = 16 * MHZ / m
    vco = ref * n
    p = 2 * (((c >> 16) & 3) + 1)
    q, rr = (c >> 24) & 0xF, (c >> 28) & 7
    assert 2 <= m <= 63 and 1 * MHZ <= ref <= 2 * MHZ and 50 <= n <= 432 and 100 * MHZ <= vco <= 432 * MHZ
    assert 2 <= q <= 15 and 2 <= rr <= 7 and vco / q <= 48 * MHZ
    assert r["RCC_CFGR"] & 3 == 2
    hclk = vco / p / ahb_div((r["RCC_CFGR"] >> 4) & 0xF)
    apb1 = hclk / apb_div((r["RCC_CFGR"] >> 10) & 7)
    apb2 = hclk / apb_div((r["RCC_CFGR"] >> 13) & 7)
    overdrive = r["PWR_CR"] >> 16 & 3 == 3  # ODEN and ODSWEN
    assert (r["PWR_CR"] >> 14) & 3 == 3 and overdrive  # scale 1 + over-drive: 180 MHz (168 without)
    assert hclk == 180 * MHZ == plan.core_hz and apb1 <= 45 * MHZ and apb2 <= 90 * MHZ
    need = next(ws for ws, top in enumerate([30, 60, 90, 120, 150, 180]) if hclk <= top * MHZ)  # 2.7-3.6 V
    assert r["FLASH_ACR"] & 0xF >= need == 5 and (r["FLASH_ACR"] >> 8) & 7 == 7  # ART: prefetch, I and D caches
    # RM0390 5.1.4: PLL on, then ODEN/ODRDY, ODSWEN/ODSWRDY, wait states, then the switch
    switch = first(trace, "RCC_CFGR", lambda v: v & 3 == 2)
    pllon = first(trace, "RCC_CR", lambda v: v >> 24 & 1)
    oden = first(trace, "PWR_CR", lambda v: v >> 16 & 1)
    odsw = first(trace, "PWR_CR", lambda v: v >> 17 & 1)
    assert pllon < oden < first(trace, "PWR_CSR", lambda v: v >> 16 & 1) < odsw < switch
    assert first(trace, "FLASH_ACR", lambda v: v & 0xF == 5) < switch
    check_baud(board, plan, int(apb1))  # USART2 is on APB1


def test_nrf52840_at_64_mhz_with_icache():
    board = get_board("nrf52840dk")
    plan = clock_plan(board, "max")
    r, _ = replay(plan, RESET[board.name])
    assert r["CLOCK_TASKS_HFCLKSTART"] == 1 and r["NVMC_ICACHECNF"] & 1 and plan.caches == ["icache"]
    assert plan.core_hz == 64 * MHZ == board.clock_hz
    check_baud(board, plan, 16 * MHZ)
    # BAUDRATE values listed by the nRF52840 Product Specification (UART chapter)
    for baud, value in {9600: 0x00275000, 38400: 0x009D5000, 115200: 0x01D7E000, 1000000: 0x10000000}.items():
        b = dataclasses.replace(board, uart={**board.uart, "baud": baud})
        assert uart_divisor(b, 16 * MHZ) == value, baud


@pytest.mark.parametrize("name", REAL)
def test_reset_clock_sets_nothing_up(name):
    board = get_board(name)
    plan = clock_plan(board, "reset")
    assert plan.steps == [] and plan.core_hz == board.raw["clock"]["reset_hz"] < board.clock_hz or name == "nrf52840dk"
    expected_uart = 16 * MHZ if name == "nrf52840dk" else plan.core_hz  # every STM32 prescaler is /1 at reset
    check_baud(board, plan, expected_uart)


def test_unreachable_clock_is_a_clear_error():
    board = get_board("nucleo-h743zi")
    with pytest.raises(EdgeqError, match="No PLL1 setting gives 401.3 MHz"):
        clock_plan(dataclasses.replace(board, clock_hz=401_300_000))
    with pytest.raises(EdgeqError, match="Unknown --clock 'turbo'"):
        clock_plan(board, "turbo")


def test_emulated_boards_keep_the_emulator_clock():
    plan = clock_plan(get_board("qemu-mps2-an500"))
    assert plan.steps == [] and plan.core_hz == 25 * MHZ and plan.caches == []


@pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("cmake")),
                    reason="needs gcc-arm-none-eabi and cmake (make test installs them)")
@pytest.mark.parametrize("clock", ["max", "reset"])
@pytest.mark.parametrize("name", REAL)
def test_real_board_firmware_compiles_and_links(tmp_path, name, clock):
    out = tmp_path / "fw"
    proc = subprocess.run([sys.executable, "-m", "edgeq", "build", str(ROOT / "examples" / "digits_cnn_int8.tflite"),
                           "--board", name, "--kernels", "ref", "--clock", clock, "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    fw = json.loads((out / "model.json").read_text())["firmware"]
    plan = clock_plan(get_board(name), clock)
    assert (fw["clock"], fw["clock_hz"], fw["caches"]) == (clock, plan.core_hz, plan.caches)
    assert (out / fw["elf"]).exists()
    startup = (out / "firmware" / "startup.c").read_text()
    assert all(f"0x{s.addr:08X}u" in startup for s in plan.steps if s.addr)  # every step is in the code
    header = (out / "firmware" / "board.h").read_text()
    assert f"#define BOARD_CLOCK_HZ {plan.core_hz}u" in header


# --- Every register the startup code and the serial driver touch, against the chip's SVD description ---------
# Where a package ships the chip's SVD: pyocd's wheel (nrf52840.svd) and cmsis-svd 0.4 (STM32F446x.svd; an 800 MB
# install, so not in the test extras). No package on PyPI, npm or Debian ships an STM32H743 or STM32L4R5 SVD.
SVD_SOURCES = {
    "nrf52840dk": ("pyocd", "debug/svd/svd_data.zip", "nrf52840.svd"),
    "nucleo-f446re": ("cmsis_svd", "data/STMicro/STM32F446x.svd", None),
    "nucleo-h743zi": None,
    "nucleo-l4r5zi": None,
}
# Fields the reference manual describes that the packaged SVD (an old, F4-generic one) lacks
SVD_OMISSIONS = {("nucleo-f446re", "RCC_PLLCFGR"): 7 << 28,  # RM0390 6.3.2: PLLR[2:0], reset value 2
                 ("nucleo-f446re", "FLASH_ACR"): 1 << 3}  # RM0390 3.8.1: LATENCY[3:0], 4 bits, not 3
CORE_PERIPHERALS = 0xE0000000  # SCB, DWT, SysTick: the Armv7-M architecture's, in no chip's SVD


def svd_text(name: str) -> str:
    import importlib.util
    import zipfile

    source = SVD_SOURCES[name]
    if source is None:
        pytest.skip(f"no package on PyPI, npm or Debian ships the SVD of {name}'s chip")
    package, path, member = source
    spec = importlib.util.find_spec(package)
    if spec is None:
        pytest.skip(f"the SVD of {name}'s chip comes with the `{package}` package, which is not installed "
                    f"(pip install {'cmsis-svd==0.4' if package == 'cmsis_svd' else package})")
    file = Path(list(spec.submodule_search_locations)[0]) / path
    if member:
        with zipfile.ZipFile(file) as z:
            return z.read(member).decode()
    return file.read_text()


def svd_registers(text: str) -> dict[int, list[tuple[str, int]]]:
    """address -> [(PERIPHERAL_REGISTER, mask of the bits its fields cover)], derivedFrom, clusters and dim
    arrays expanded (CMSIS-SVD format)."""
    import xml.etree.ElementTree as ET

    def num(node, tag, default=None):
        v = node.findtext(tag)
        if v is None:
            return default
        v = v.strip().lower().replace("#", "0b")
        return int(v, 10) if v.isdigit() else int(v, 0)  # decimal may carry leading zeros

    def fields_mask(reg) -> int:
        mask = 0
        for f in reg.iter("field"):
            if f.findtext("bitRange"):
                msb, lsb = (int(x) for x in f.findtext("bitRange").strip("[]").split(":"))
            elif f.findtext("lsb") is not None:
                msb, lsb = num(f, "msb"), num(f, "lsb")
            else:
                lsb = num(f, "bitOffset")
                msb = lsb + num(f, "bitWidth", 1) - 1
            mask |= ((1 << (msb - lsb + 1)) - 1) << lsb
        return mask

    def copies(node, name):
        n = num(node, "dim", 1)
        step = num(node, "dimIncrement", 0)
        index = (node.findtext("dimIndex") or "").split(",")
        return [(name.replace("[%s]", str(k)).replace("%s", index[k] if len(index) == n else str(k)), k * step)
                for k in range(n)]

    def walk(container, base, prefix, out):
        for node in container:
            if node.tag not in ("register", "cluster"):
                continue
            for name, extra in copies(node, node.findtext("name")):
                at = base + num(node, "addressOffset") + extra
                if node.tag == "cluster":
                    walk(node, at, f"{prefix}{name}_", out)
                else:
                    out.setdefault(at, []).append((f"{prefix}{name}", fields_mask(node)))

    root = ET.fromstring(text)
    peripherals = {p.findtext("name"): p for p in root.iter("peripheral")}
    out: dict[int, list[tuple[str, int]]] = {}
    for name, p in peripherals.items():
        regs = p.find("registers")
        if regs is None and p.get("derivedFrom"):
            regs = peripherals[p.get("derivedFrom")].find("registers")
        if regs is not None:
            walk(regs, num(p, "baseAddress"), f"{name}_", out)
    return out


def firmware_sources(tmp_path, name: str) -> str:
    from edgeq.build import compile_graph
    from edgeq.frontends import load_model
    from edgeq.targets.firmware import firmware_options, write_firmware

    board = get_board(name)
    c = compile_graph(load_model(ROOT / "examples" / "digits_cnn_int8.tflite"), "keep", board, kernels="ref")
    write_firmware(c.cmodel, board, c.graph.source_hash, tmp_path, firmware_options(c.cmodel, board))
    return "\n".join((tmp_path / "firmware" / f).read_text() for f in ("startup.c", "board.c"))


def register_accesses(code: str) -> set[int]:
    """Every constant register address the generated C reads or writes (gpio_alternate's MODER and AFR too)."""
    import re

    uart = int(re.search(r"#define UART_BASE (0x[0-9A-F]+)u", code).group(1), 16)
    found, seen = set(), 0
    for m in re.finditer(r"REG32\(((?:0x[0-9A-F]+u|UART_BASE)(?:\s*\+\s*0x[0-9A-F]+u)?)\)", code):
        parts = [uart if p.strip() == "UART_BASE" else int(p.strip()[:-1], 16) for p in m.group(1).split("+")]
        found.add(sum(parts))
        seen += 1
    for base, pin in re.findall(r"gpio_alternate\((0x[0-9A-F]+)u, (\d+)u", code):
        found |= {int(base, 16), int(base, 16) + (0x20 if int(pin) < 8 else 0x24)}
    # the only other uses: the macro's definition and gpio_alternate's accesses through its arguments
    others = re.findall(r"REG32\(([^)]*)\)", code)
    assert len(others) - seen == sum(o in ("addr", "base + 0x00u", "afr") for o in others), others
    return {a for a in found if a < CORE_PERIPHERALS}


@pytest.mark.parametrize("name", REAL)
def test_every_register_touched_is_in_the_chips_svd(tmp_path, name):
    """Addresses: every register the startup code and the serial driver access is one the SVD describes. Names:
    each clock step's register is the SVD's PERIPHERAL_REGISTER at that address. Bits: every bit a clock step
    writes as 1, changes or waits on, and the clock-enable bits of the serial port, lie in fields the SVD names
    (or in the fields SVD_OMISSIONS lists, which the reference manual has and the SVD lacks)."""
    regs = svd_registers(svd_text(name))
    board = get_board(name)
    missing = sorted(f"0x{a:08X}" for a in register_accesses(firmware_sources(tmp_path, name)) if a not in regs)
    assert not missing, f"{name}: registers accessed that {name}'s SVD does not describe: {missing}"
    plan = clock_plan(board)
    for s in plan.steps:
        if not s.addr:
            continue
        names = {n for n, _ in regs[s.addr]}
        assert s.name in names, f"{s.name} at 0x{s.addr:08X} is {names} in the SVD"
        fields = next(m for n, m in regs[s.addr] if n == s.name) | SVD_OMISSIONS.get((name, s.name), 0)
        bits = {"write": s.value, "modify": s.mask, "wait": s.mask}[s.op]
        assert bits & ~fields == 0, f"{s.name} ({s.why}): bits 0x{bits & ~fields:08X} are in no field of the SVD's"
    for key in ("rcc_enable", "gpio_rcc_enable"):
        if key in board.uart:
            addr, bits = board.uart[key]
            fields = regs[addr][0][1]
            assert bits & ~fields == 0, f"{name} uart.{key}: 0x{bits:08X} sets bits in no field of {regs[addr]}"
