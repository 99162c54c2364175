"""Clock trees of the real boards: the PLL, prescalers, flash wait states, voltage scaling and caches that
the firmware's startup code sets up, computed from the board file's [clock] table.

A plan is a list of register steps (write, modify, wait) that templates/firmware/startup.c.j2 renders
one to one, so the tests can replay exactly what the firmware does on a model of the registers and
check the result against the reference manuals' formulas and limits (tests/test_clocks.py).
Sources: RM0433 (STM32H743), RM0432 (STM32L4R5), RM0390 (STM32F446), nRF52840 Product Specification.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgeq.errors import EdgeqError
from edgeq.targets.boards import Board

CLOCK_MODES = ("max", "reset")


@dataclass(frozen=True)
class Step:
    op: str  # "write" value; "modify" (clear mask, set value); "wait" until (reg & mask) == value; "delay" value
    #           loop iterations; "call" the startup function `name`
    name: str  # register name as in the chip's SVD (PERIPHERAL_REGISTER), or the function called
    addr: int = 0
    mask: int = 0
    value: int = 0
    why: str = ""


@dataclass
class ClockPlan:
    board: str
    mode: str
    core_hz: int  # the core clock the firmware runs at
    uart_hz: int  # the serial port's kernel clock
    caches: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # the chosen dividers, for reports and tests
    uart_divisor: int = 0  # BRR (STM32) or BAUDRATE (nRF) for the board's baud rate

    @property
    def helpers(self) -> set[str]:
        return {s.name for s in self.steps if s.op == "call"}


def _write(name, addr, value, why=""):
    return Step("write", name, addr, 0xFFFFFFFF, value, why)


def _modify(name, addr, mask, value, why=""):
    return Step("modify", name, addr, mask, value, why)


def _wait(name, addr, mask, value, why=""):
    return Step("wait", name, addr, mask, value, why)


# --- STM32H743 (RM0433) ------------------------------------------------------------------------------------
H7_RCC, H7_PWR, H7_FLASH = 0x58024400, 0x58024800, 0x52002000
H7_VCO_WIDE = (192e6, 836e6)   # PLLxVCOSEL = 0, input 2-16 MHz (836 MHz: revision Y; revision V allows 960)
H7_PLL_IN = (1e6, 16e6)
H7_VOS1_SYS_MAX, H7_VOS1_HCLK_MAX, H7_APB_MAX = 400e6, 200e6, 100e6  # VOS1, both silicon revisions
# RM0433 Table 17, VOS1: (highest AXI clock, LATENCY, WRHIGHFREQ)
H7_FLASH_VOS1 = [(70e6, 0, 0), (140e6, 1, 1), (185e6, 2, 1), (210e6, 2, 2), (225e6, 3, 2)]


def _h7_range(ref_hz: float) -> int:
    """PLLxRGE: 0 for 1-2 MHz, 1 for 2-4, 2 for 4-8, 3 for 8-16."""
    return next(r for r, top in enumerate((2e6, 4e6, 8e6, 16e6)) if ref_hz <= top)


def _stm32h7(cfg: dict, target: int) -> ClockPlan:
    src_hz = cfg["source_hz"]
    if cfg["source"] != "hsi":
        raise EdgeqError("stm32h7 clock plans start PLL1 from the HSI (source = \"hsi\").")
    best = None
    for m in range(1, 64):
        ref = src_hz / m
        if not (2e6 <= ref <= H7_PLL_IN[1]):  # the wide VCO needs at least 2 MHz in
            continue
        for p in range(2, 129, 2):  # PLL1's P divider takes even values only
            n = round(target * p / ref)
            vco = ref * n
            if 4 <= n <= 512 and H7_VCO_WIDE[0] <= vco <= H7_VCO_WIDE[1] and vco / p == target:
                best = best or (m, n, p)
    if best is None:
        raise EdgeqError(f"No PLL1 setting gives {target / 1e6:g} MHz from {src_hz / 1e6:g} MHz on the STM32H7.")
    m, n, p = best
    ref = src_hz / m
    vco = ref * n
    q = next(d for d in range(1, 129) if vco / d <= 200e6)  # pll1_q: a kernel clock, kept within 200 MHz
    hpre = 2 if target > H7_VOS1_HCLK_MAX else 1
    hclk = target // hpre
    ppre = 2 if hclk > H7_APB_MAX else 1
    pclk = hclk // ppre
    latency, wrhighfreq = next((lat, wr) for top, lat, wr in H7_FLASH_VOS1 if hclk <= top)
    enc_ahb = {1: 0, 2: 0b1000}[hpre]
    enc_apb = {1: 0, 2: 0b100}[ppre]
    rcc = lambda off: H7_RCC + off  # noqa: E731
    steps = [
        _modify("PWR_CR3", H7_PWR + 0x0C, 7, 1 << 1, "LDO supply; the first write locks the supply configuration"),
        _wait("PWR_CSR1", H7_PWR + 0x04, 1 << 13, 1 << 13, "ACTVOSRDY"),
        _modify("PWR_D3CR", H7_PWR + 0x18, 3 << 14, 3 << 14, "VOS1"),
        _wait("PWR_D3CR", H7_PWR + 0x18, 1 << 13, 1 << 13, "VOSRDY"),
        _modify("FLASH_ACR", H7_FLASH + 0x00, 0x3F, latency | (wrhighfreq << 4), "wait states before speeding up"),
        _wait("FLASH_ACR", H7_FLASH + 0x00, 0x3F, latency | (wrhighfreq << 4)),
        _modify("RCC_PLLCKSELR", rcc(0x28), 0x3F << 4 | 3, m << 4, "PLLSRC = HSI, DIVM1"),
        _modify("RCC_PLLCFGR", rcc(0x2C), 0xF | 7 << 16, _h7_range(ref) << 2 | 7 << 16,
                "PLL1RGE, wide VCO, integer mode, P/Q/R outputs on"),
        _write("RCC_PLL1DIVR", rcc(0x30), (n - 1) | (p - 1) << 9 | (q - 1) << 16 | (2 - 1) << 24, "DIVN1 DIVP1 DIVQ1 DIVR1"),
        _modify("RCC_CR", rcc(0x00), 1 << 24, 1 << 24, "PLL1ON"),
        _wait("RCC_CR", rcc(0x00), 1 << 25, 1 << 25, "PLL1RDY"),
        _write("RCC_D1CFGR", rcc(0x18), enc_ahb | enc_apb << 4, "D1CPRE /1, HPRE, D1PPRE"),
        _write("RCC_D2CFGR", rcc(0x1C), enc_apb << 4 | enc_apb << 8, "D2PPRE1, D2PPRE2"),
        _write("RCC_D3CFGR", rcc(0x20), enc_apb << 4, "D3PPRE"),
        _modify("RCC_CFGR", rcc(0x10), 7, 3, "SW = PLL1"),
        _wait("RCC_CFGR", rcc(0x10), 7 << 3, 3 << 3, "SWS = PLL1"),
    ]
    caches = list(cfg.get("caches", []))
    if caches:
        steps.append(Step("call", "eq_m7_enable_caches", why="I-cache and D-cache of the Cortex-M7"))
    return ClockPlan("", "max", target, pclk, caches, steps,
                     {"source": "HSI", "source_hz": src_hz, "pll_m": m, "pll_n": n, "pll_p": p, "pll_q": q,
                      "vco_hz": int(vco), "hclk_hz": hclk, "apb_hz": pclk, "flash_latency": latency,
                      "voltage_scale": "VOS1"})


# --- STM32L4R5 (RM0432) ------------------------------------------------------------------------------------
L4_RCC, L4_PWR, L4_FLASH = 0x40021000, 0x40007000, 0x40022000
L4_PLL_IN, L4_VCO = (2.66e6, 16e6), (64e6, 344e6)
L4_BOOST_MAX = 120e6
L4_FLASH_BOOST = [20e6, 40e6, 60e6, 80e6, 100e6, 120e6]  # range 1 boost: highest HCLK for 0..5 wait states


def _stm32l4(cfg: dict, target: int) -> ClockPlan:
    src_hz = cfg["source_hz"]
    if cfg["source"] != "hsi16":
        raise EdgeqError("stm32l4 clock plans start the PLL from HSI16 (source = \"hsi16\").")
    best = None
    for m in range(1, 17):
        ref = src_hz / m
        if not (L4_PLL_IN[0] <= ref <= L4_PLL_IN[1]):
            continue
        for r in (2, 4, 6, 8):
            n = round(target * r / ref)
            if 8 <= n <= 127 and L4_VCO[0] <= ref * n <= L4_VCO[1] and ref * n / r == target:
                best = best or (m, n, r)
    if best is None:
        raise EdgeqError(f"No PLL setting gives {target / 1e6:g} MHz from {src_hz / 1e6:g} MHz on the STM32L4+.")
    m, n, r = best
    latency = next(i for i, top in enumerate(L4_FLASH_BOOST) if target <= top)
    boost = target > 80e6
    cfgr = L4_RCC + 0x08
    steps = [
        _modify("RCC_APB1ENR1", L4_RCC + 0x58, 1 << 28, 1 << 28, "PWREN"),
        _modify("RCC_CR", L4_RCC + 0x00, 1 << 8, 1 << 8, "HSION"),
        _wait("RCC_CR", L4_RCC + 0x00, 1 << 10, 1 << 10, "HSIRDY"),
        _modify("PWR_CR1", L4_PWR + 0x00, 3 << 9, 1 << 9, "range 1"),
        _wait("PWR_SR2", L4_PWR + 0x14, 1 << 10, 0, "VOSF"),
    ]
    if boost:
        steps += [
            _modify("RCC_CFGR", cfgr, 0xF << 4, 0b1000 << 4, "AHB /2 before the boost switch (RM0432 5.1.8)"),
            _modify("PWR_CR5", L4_PWR + 0x80, 1 << 8, 0, "R1MODE = 0: range 1 boost"),
        ]
    steps += [
        _modify("FLASH_ACR", L4_FLASH + 0x00, 0xF | 7 << 8, latency | 7 << 8, "wait states, prefetch, ART caches"),
        _wait("FLASH_ACR", L4_FLASH + 0x00, 0xF, latency),
        _write("RCC_PLLCFGR", L4_RCC + 0x0C, 2 | (m - 1) << 4 | n << 8 | 1 << 24 | (r // 2 - 1) << 25,
               "PLLSRC = HSI16, PLLM, PLLN, PLLR, PLLREN"),
        _modify("RCC_CR", L4_RCC + 0x00, 1 << 24, 1 << 24, "PLLON"),
        _wait("RCC_CR", L4_RCC + 0x00, 1 << 25, 1 << 25, "PLLRDY"),
        _modify("RCC_CFGR", cfgr, 3 | 0x3F << 8, 3, "SW = PLL, APB1 and APB2 /1"),
        _wait("RCC_CFGR", cfgr, 3 << 2, 3 << 2, "SWS = PLL"),
    ]
    if boost:
        steps += [Step("delay", "delay", value=200, why="at least 1 us at HCLK/2 before AHB /1"),
                  _modify("RCC_CFGR", cfgr, 0xF << 4, 0, "AHB /1")]
    return ClockPlan("", "max", target, target, ["flash-prefetch", "flash-icache", "flash-dcache"], steps,
                     {"source": "HSI16", "source_hz": src_hz, "pll_m": m, "pll_n": n, "pll_r": r,
                      "vco_hz": int(src_hz / m * n), "hclk_hz": target, "apb_hz": target, "flash_latency": latency,
                      "voltage_scale": "range 1 boost" if boost else "range 1"})


# --- STM32F446 (RM0390) ------------------------------------------------------------------------------------
F4_RCC, F4_PWR, F4_FLASH = 0x40023800, 0x40007000, 0x40023C00
F4_PLL_IN, F4_VCO = (1e6, 2e6), (100e6, 432e6)
F4_HCLK_OD, F4_APB1_MAX, F4_APB2_MAX = 180e6, 45e6, 90e6


def _stm32f4(cfg: dict, target: int) -> ClockPlan:
    src_hz = cfg["source_hz"]
    if cfg["source"] != "hsi":
        raise EdgeqError("stm32f4 clock plans start the PLL from the HSI (source = \"hsi\").")
    m = next(m for m in range(2, 64) if src_hz / m <= F4_PLL_IN[1])  # 2 MHz in: the least jitter (RM0390 6.3.2)
    ref = src_hz / m
    best = None
    for p in (2, 4, 6, 8):
        n = round(target * p / ref)
        if 50 <= n <= 432 and F4_VCO[0] <= ref * n <= F4_VCO[1] and ref * n / p == target:
            best = best or (n, p)
    if best is None:
        raise EdgeqError(f"No PLL setting gives {target / 1e6:g} MHz from {src_hz / 1e6:g} MHz on the STM32F4.")
    n, p = best
    vco = ref * n
    q = next(d for d in range(2, 16) if vco / d <= 48e6)
    ppre1 = next(d for d in (1, 2, 4, 8, 16) if target / d <= F4_APB1_MAX)
    ppre2 = next(d for d in (1, 2, 4, 8, 16) if target / d <= F4_APB2_MAX)
    enc = {1: 0, 2: 4, 4: 5, 8: 6, 16: 7}
    latency = int(-(-target // 30_000_000)) - 1  # 2.7-3.6 V: one wait state per 30 MHz (RM0390 Table 5)
    overdrive = target > 168e6
    steps = [
        _modify("RCC_APB1ENR", F4_RCC + 0x40, 1 << 28, 1 << 28, "PWREN"),
        _modify("PWR_CR", F4_PWR + 0x00, 3 << 14, 3 << 14, "voltage scale 1"),
        _write("RCC_PLLCFGR", F4_RCC + 0x04, m | n << 6 | (p // 2 - 1) << 16 | q << 24 | 2 << 28,
               "PLLSRC = HSI, PLLM, PLLN, PLLP, PLLQ, PLLR"),
        _modify("RCC_CR", F4_RCC + 0x00, 1 << 24, 1 << 24, "PLLON"),
    ]
    if overdrive:  # RM0390 5.1.4: after PLLON, before the switch
        steps += [
            _modify("PWR_CR", F4_PWR + 0x00, 1 << 16, 1 << 16, "ODEN"),
            _wait("PWR_CSR", F4_PWR + 0x04, 1 << 16, 1 << 16, "ODRDY"),
            _modify("PWR_CR", F4_PWR + 0x00, 1 << 17, 1 << 17, "ODSWEN"),
            _wait("PWR_CSR", F4_PWR + 0x04, 1 << 17, 1 << 17, "ODSWRDY"),
        ]
    steps += [
        _write("FLASH_ACR", F4_FLASH + 0x00, latency | 7 << 8, "wait states, ART accelerator (prefetch, I and D caches)"),
        _wait("FLASH_ACR", F4_FLASH + 0x00, 0xF, latency),
        _modify("RCC_CFGR", F4_RCC + 0x08, 0xF << 4 | 0x3F << 10, enc[ppre1] << 10 | enc[ppre2] << 13,
                "AHB /1, APB1, APB2"),
        _wait("RCC_CR", F4_RCC + 0x00, 1 << 25, 1 << 25, "PLLRDY"),
        _modify("RCC_CFGR", F4_RCC + 0x08, 3, 2, "SW = PLL"),
        _wait("RCC_CFGR", F4_RCC + 0x08, 3 << 2, 2 << 2, "SWS = PLL"),
    ]
    return ClockPlan("", "max", target, target // ppre1, ["flash-prefetch", "flash-icache", "flash-dcache"], steps,
                     {"source": "HSI", "source_hz": src_hz, "pll_m": m, "pll_n": n, "pll_p": p, "pll_q": q,
                      "vco_hz": int(vco), "hclk_hz": target, "apb1_hz": target // ppre1, "apb2_hz": target // ppre2,
                      "flash_latency": latency, "voltage_scale": "scale 1 + over-drive" if overdrive else "scale 1"})


# --- nRF52840 (Product Specification v1.7) -----------------------------------------------------------------
NRF_CLOCK, NRF_NVMC = 0x40000000, 0x4001E000


def _nrf52(cfg: dict, target: int) -> ClockPlan:
    if target != 64_000_000:
        raise EdgeqError("The nRF52840's core always runs at 64 MHz.")
    steps = [
        _write("CLOCK_EVENTS_HFCLKSTARTED", NRF_CLOCK + 0x100, 0),
        _write("CLOCK_TASKS_HFCLKSTART", NRF_CLOCK + 0x000, 1, "the 32 MHz crystal: accurate UART baud and timing"),
        _wait("CLOCK_EVENTS_HFCLKSTARTED", NRF_CLOCK + 0x100, 1, 1),
        _write("NVMC_ICACHECNF", NRF_NVMC + 0x540, 1, "CACHEEN"),
    ]
    return ClockPlan("", "max", target, 16_000_000, ["icache"], steps, {"source": "HFXO", "source_hz": 32_000_000})


# --- GD32VF103 (GD32VF103 User Manual, ch. 5 RCU) -------------------------------------------------------------
GD32V_RCU = 0x40021000
GD32V_APB1_MAX, GD32V_PLL_OUT_MAX = 54e6, 108e6


def _gd32v_pllmf(mult: int) -> int:
    """RCU_CFG0's PLLMF bits (18-21, and bit 29 for PLLMF[4]) for x2..x14, x16..x32 (x6.5 is not offered)."""
    code = mult - 2 if mult <= 14 else (mult - 1 if mult >= 17 else 15 if mult == 16 else None)
    if code is None or not (2 <= mult <= 32):
        raise EdgeqError(f"The GD32VF103's PLL has no x{mult} setting.")
    return (code & 0xF) << 18 | (code >> 4) << 29


def _gd32vf103(cfg: dict, target: int) -> ClockPlan:
    if cfg["source"] != "irc8m":
        raise EdgeqError("gd32vf103 clock plans start the PLL from IRC8M/2 (source = \"irc8m\").")
    ref = cfg["source_hz"] // 2
    mult = target // ref
    if mult * ref != target or target > GD32V_PLL_OUT_MAX:
        raise EdgeqError(f"No PLL setting gives {target / 1e6:g} MHz from IRC8M/2 on the GD32VF103.")
    apb1 = next(d for d in (1, 2, 4, 8, 16) if target / d <= GD32V_APB1_MAX)
    enc = {1: 0, 2: 4, 4: 5, 8: 6, 16: 7}
    steps = [
        _modify("RCU_CFG0", GD32V_RCU + 0x04, 0xF << 4 | 7 << 8 | 7 << 11, enc[apb1] << 8,
                "AHB /1, APB1 within 54 MHz, APB2 /1"),
        _modify("RCU_CFG0", GD32V_RCU + 0x04, 1 << 16 | 0xF << 18 | 1 << 29, _gd32v_pllmf(mult),
                "PLLSEL = IRC8M/2, PLLMF"),
        _modify("RCU_CTL", GD32V_RCU + 0x00, 1 << 24, 1 << 24, "PLLEN"),
        _wait("RCU_CTL", GD32V_RCU + 0x00, 1 << 25, 1 << 25, "PLLSTB"),
        _modify("RCU_CFG0", GD32V_RCU + 0x04, 3, 2, "SCS = PLL"),
        _wait("RCU_CFG0", GD32V_RCU + 0x04, 3 << 2, 2 << 2, "SCSS = PLL"),
    ]
    # USART0 is on APB2, which runs at the core clock
    return ClockPlan("", "max", target, target, [], steps,
                     {"source": "IRC8M/2", "source_hz": cfg["source_hz"], "pll_mult": mult, "ahb_hz": target,
                      "apb1_hz": target // apb1, "apb2_hz": target})


FAMILIES = {"stm32h7": _stm32h7, "stm32l4": _stm32l4, "stm32f4": _stm32f4, "nrf52": _nrf52, "gd32vf103": _gd32vf103}
# The serial port's kernel clock at reset: what each family's UART is fed before any set-up.
RESET_UART_HZ = {"stm32h7": 1, "stm32l4": 1, "stm32f4": 1, "nrf52": 16_000_000, "gd32vf103": 1}  # 1: the core clock


def clock_plan(board: Board, mode: str = "max") -> ClockPlan:
    """The clock set-up for board at mode "max" (the board file's clock_hz) or "reset" (none: the reset clock)."""
    if mode not in CLOCK_MODES:
        raise EdgeqError(f"Unknown --clock '{mode}'; choose one of {', '.join(CLOCK_MODES)}.")
    cfg = board.raw.get("clock")
    if not cfg:  # emulated boards: the clock is the emulator's, nothing to set up
        plan = ClockPlan(board.name, mode, board.clock_hz, board.clock_hz)
    elif mode == "reset":
        uart = RESET_UART_HZ[cfg["family"]]
        plan = ClockPlan(board.name, mode, cfg["reset_hz"], cfg["reset_hz"] if uart == 1 else uart,
                         list(cfg.get("reset_caches", [])))
    else:
        family = FAMILIES.get(cfg["family"])
        if family is None:
            raise EdgeqError(f"{board.name}: unknown clock family '{cfg['family']}' in its board file; known: "
                             f"{', '.join(FAMILIES)}.")
        plan = family(cfg, board.clock_hz)
        plan.board = board.name
    plan.uart_divisor = uart_divisor(board, plan.uart_hz)
    return plan


def uart_divisor(board: Board, uart_hz: int) -> int:
    """The baud rate register's value for the board's serial port fed by uart_hz."""
    driver, baud = board.uart.get("driver"), board.uart.get("baud", 115200)
    if driver in ("stm32_usart", "stm32_usart_v1", "gd32_usart"):  # oversampling by 16: BRR = fck / baud
        return (uart_hz + baud // 2) // baud
    if driver == "stm32_lpuart":  # BRR = 256 fck / baud, valid for 3 baud <= fck <= 4096 baud
        if not 3 * baud <= uart_hz <= 4096 * baud:
            raise EdgeqError(f"{board.name}: LPUART1 cannot make {baud} baud from {uart_hz / 1e6:g} MHz.")
        return (256 * uart_hz + baud // 2) // baud
    if driver == "nrf_uart":  # BAUDRATE = baud * 2^32 / 16 MHz, in steps of 0x1000 (the values the PS lists)
        return ((baud << 32) // uart_hz + 0x800) & 0xFFFFF000
    return 0
