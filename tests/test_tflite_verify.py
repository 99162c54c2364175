"""The TFLite flatbuffer verifier (edgeq/frontends/tflite_verify.py) and the other refusals that close the fuzz
test's findings (issue 14): each damaged model below was built by edgeq while TFLite Micro refused it or read it
differently."""
from __future__ import annotations

import inspect
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import tflite

from edgeq.errors import EdgeqError
from edgeq.frontends.tflite import load_tflite
from edgeq.frontends.tflite_verify import SCHEMA, verify_tflite

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = (ROOT / "examples" / "digits_cnn_int8.tflite").read_bytes()
SHARED = ROOT.parent / "shared" / "models"


def _table(data: bytes, pos: int) -> tuple[int, list[int]]:
    """(table position, field offsets) of the table at pos."""
    vt = pos - struct.unpack_from("<i", data, pos)[0]
    vsize = struct.unpack_from("<H", data, vt)[0]
    return pos, list(struct.unpack_from(f"<{(vsize - 4) // 2}H", data, vt + 4))


def _field_pos(data: bytes, table: int, slot: int) -> int:
    pos, offs = _table(data, table)
    assert slot < len(offs) and offs[slot], f"field {slot} absent"
    return pos + offs[slot]


def _deref(data: bytes, at: int) -> int:
    return at + struct.unpack_from("<I", data, at)[0]


def _oracle_refuses(data: bytes) -> bool:
    pytest.importorskip("tflite_micro")
    from tests.oracles import tflm_run

    try:
        tflm_run(data, [np.zeros((1, 8, 8, 1), np.int8)])
    except Exception:  # noqa: BLE001 - any refusal by TFLite Micro
        return True
    return False


def test_the_examples_and_shared_models_pass():
    verify_tflite(EXAMPLE, "example")
    models = sorted(SHARED.rglob("*.tflite")) if SHARED.is_dir() else []
    for path in models:
        verify_tflite(path.read_bytes(), str(path))


def test_a_damaged_offset_in_fields_edgeq_never_reads_is_refused():
    """Mutants 186 and 276: the signature's offsets broken. edgeq never reads signatures, TFLite Micro does."""
    model = _deref(EXAMPLE, 0)
    sig_vec = _deref(EXAMPLE, _field_pos(EXAMPLE, model, 7))
    sig = _deref(EXAMPLE, sig_vec + 4)
    key_at = _field_pos(EXAMPLE, sig, 2)
    bad = bytearray(EXAMPLE)
    struct.pack_into("<I", bad, key_at, 0x0B000000)
    with pytest.raises(EdgeqError, match=r"damaged TFLite file: the length of model\.signature_defs\[0\]"
                                         r"\.signature_key at byte \d+ runs past the end"):
        load_tflite(bytes(bad), "m")
    assert _oracle_refuses(bytes(bad))
    bad = bytearray(EXAMPLE)
    bad[_field_pos(EXAMPLE, model, 7)] += 1  # misaligned
    with pytest.raises(EdgeqError, match=r"the length of model\.signature_defs at byte \d+ is not 4-byte aligned"):
        load_tflite(bytes(bad), "m")


def test_vtables_strings_and_unions_are_checked():
    model = _deref(EXAMPLE, 0)
    # the root table's vtable pointed outside the file
    bad = bytearray(EXAMPLE)
    struct.pack_into("<i", bad, model, 1 << 30)
    with pytest.raises(EdgeqError, match=r"the vtable of model at byte -?\d+ runs past the end"):
        verify_tflite(bytes(bad), "m")
    # a string without its terminating zero
    desc = _deref(EXAMPLE, _field_pos(EXAMPLE, model, 3))
    bad = bytearray(EXAMPLE)
    bad[desc + 4 + struct.unpack_from("<I", EXAMPLE, desc)[0]] = ord("x")
    with pytest.raises(EdgeqError, match=r"string model\.description at byte \d+ does not end in a zero byte"):
        verify_tflite(bytes(bad), "m")
    # the first operator's options (a union member) offset past the end
    sub = _deref(EXAMPLE, _deref(EXAMPLE, _field_pos(EXAMPLE, model, 2)) + 4)
    op = _deref(EXAMPLE, _deref(EXAMPLE, _field_pos(EXAMPLE, sub, 3)) + 4)
    bad = bytearray(EXAMPLE)
    struct.pack_into("<I", bad, _field_pos(EXAMPLE, op, 4), 0x40000000)
    with pytest.raises(EdgeqError, match=r"model\.subgraphs\[0\]\.operators\[0\]\.builtin_options"):
        verify_tflite(bytes(bad), "m")


def test_an_unused_operator_tflite_micro_cannot_run_is_refused():
    """Mutant 267: the SHAPE operator feeding RESHAPE's shape operand became STABLEHLO_COMPARE."""
    m = tflite.Model.GetRootAsModel(EXAMPLE, 0)
    k = next(i for i in range(m.OperatorCodesLength())
             if m.OperatorCodes(i).BuiltinCode() == tflite.BuiltinOperator.SHAPE)
    model = _deref(EXAMPLE, 0)
    code = _deref(EXAMPLE, _deref(EXAMPLE, _field_pos(EXAMPLE, model, 1)) + 4 + 4 * k)
    bad = bytearray(EXAMPLE)
    struct.pack_into("<i", bad, _field_pos(EXAMPLE, code, 3), tflite.BuiltinOperator.STABLEHLO_COMPARE)
    with pytest.raises(EdgeqError, match=r"holds operator\(s\) #\d+ STABLEHLO_COMPARE, which no output depends on"):
        load_tflite(bytes(bad), "m")
    assert _oracle_refuses(bytes(bad))
    load_tflite(EXAMPLE, "m")  # the SHAPE it replaced is accepted


def test_a_rescale_factor_beyond_int32_is_refused_with_its_layer():
    """Mutant 117: an activation scale of 7e27 gives the next convolution a multiplier TFLite shifts by 91 bits."""
    from edgeq.build import compile_graph

    graph = load_tflite(EXAMPLE, "m")
    conv = next(op for op in graph.ops if op.kind == "CONV_2D" and graph.t(op.inputs[0]).name not in graph.inputs)
    graph.t(conv.inputs[0]).quant.scale = np.array([7.46e27], np.float32)
    with pytest.raises(EdgeqError, match=rf"Operator {conv.name} \(CONV_2D\): its quantization scales ask for a "
                                         r"rescale factor of [\d.]+e\+27, beyond 2\^31"):
        compile_graph(graph, "keep", kernels="ref")


def _binding_fields(table: str) -> list[str]:
    """The kind of each field of one table, read from the `tflite` package's generated accessors."""
    src = inspect.getsource(getattr(tflite, table))
    fields = {}
    for name, body in re.findall(r"    def (\w+)\(self[^)]*\):\n((?:        .*\n|\n)*)", src):
        off = re.search(r"Offset\((\d+)\)", body)
        if not off or name.endswith(("Length", "IsNone", "AsNumpy")):
            continue
        flags = [f for f in re.findall(r"number_types\.(\w+)Flags", body) if f != "UOffsetT"]
        kind = ("union" if "Union(" in body else "tables" if "Vector(" in body and "Indirect(" in body
                else "vec" if "Vector(" in body else "str" if "String(" in body
                else "table" if "Indirect(" in body else "scalar")
        size = {"Bool": 1, "Int8": 1, "Uint8": 1, "Int16": 2, "Uint16": 2, "Int32": 4, "Uint32": 4, "Float32": 4,
                "Int64": 8, "Uint64": 8, "Float64": 8}.get(flags[-1]) if flags else None
        fields[(int(off.group(1)) - 4) // 2] = (kind, size)
    return [fields.get(i) for i in range(max(fields) + 1)] if fields else []


def _schema_kind(kind) -> tuple:
    if isinstance(kind, int):
        return ("scalar", kind)
    if kind == "str":
        return ("str", None)
    return (kind[0], kind[1] if kind[0] == "vec" else None)


def test_the_schema_matches_the_tflite_bindings():
    """Every field the verifier types is typed as the `tflite` package reads it, and every option table with an
    offset field (vector, string, table) is in the verifier's schema."""
    for table, fields in SCHEMA.items():
        bound = _binding_fields(table)
        for slot, (name, kind) in enumerate(fields):
            if kind is None or slot >= len(bound) or bound[slot] is None:
                continue
            assert _schema_kind(kind) == bound[slot], (table, name, kind, bound[slot])
    for enum in (tflite.BuiltinOptions, tflite.BuiltinOptions2):
        for name, value in vars(enum).items():
            if name.startswith("_") or not value or not hasattr(tflite, name):
                continue
            if any(f and f[0] != "scalar" for f in _binding_fields(name)):
                assert name in SCHEMA, f"{name} has offset fields the verifier does not check"
