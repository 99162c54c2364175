"""A graph as data: JSON for the structure, .npz (no pickled objects) for constants. Build folders keep the
integer graph this way for `edgeq validate`, so reading a build folder can never run code from it."""
from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Quant, Tensor, ops

FORMAT = "edgeq-graph-1"
OP_CLASSES = {cls.__name__: cls for cls in ops.ALL_OPS}
_BASE_FIELDS = {f.name for f in dataclasses.fields(ops.Op)}


def _plain(v):
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


def _tupled(v):
    return tuple(_tupled(x) for x in v) if isinstance(v, list) else v


def _quant(q: Quant | None) -> dict | None:
    return None if q is None else {"scale": [float(s) for s in q.scale], "zero_point": [int(z) for z in q.zero_point],
                                   "axis": int(q.axis)}


def save_graph(graph: Graph, json_path: Path, npz_path: Path) -> None:
    names = sorted(graph.tensors)
    tensors, arrays = [], {}
    for k, name in enumerate(names):
        t = graph.tensors[name]
        q = t.quant
        tensors.append({"name": name, "shape": list(t.shape), "dtype": t.dtype, "const": t.is_const,
                        "quant": _quant(q)})
        if t.is_const:
            arrays[f"t{k}"] = np.ascontiguousarray(t.data)
    states = []
    for k, name in enumerate(sorted(graph.states)):
        t = graph.states[name]
        states.append({"name": name, "shape": list(t.shape), "dtype": t.dtype, "quant": _quant(t.quant)})
        arrays[f"s{k}"] = np.ascontiguousarray(t.data)
    op_list = [{"class": type(op).__name__, "name": op.name, "inputs": list(op.inputs), "outputs": list(op.outputs),
                "attrs": {f.name: _plain(getattr(op, f.name)) for f in dataclasses.fields(op)
                          if f.name not in _BASE_FIELDS}} for op in graph.ops]
    doc = {"format": FORMAT, "name": graph.name, "source_hash": graph.source_hash, "requant": graph.requant,
           "inputs": graph.inputs, "outputs": graph.outputs, "notes": graph.notes, "tensors": tensors, "ops": op_list,
           "states": states}
    json_path.write_text(json.dumps(doc) + "\n")
    np.savez_compressed(npz_path, **arrays)


def load_graph(json_path: Path, npz_path: Path) -> Graph:
    """The graph save_graph wrote; anything else is refused with an EdgeqError (never executed)."""
    def damaged(why: str) -> EdgeqError:
        return EdgeqError(f"{json_path.parent} has a damaged reference graph ({json_path.name}, {npz_path.name}: "
                          f"{why}); rebuild the folder with `edgeq build`.")

    try:
        doc = json.loads(json_path.read_text())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise damaged(f"not format {FORMAT}")
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        def tensor(t: dict, value: np.ndarray | None) -> Tensor:
            q = t["quant"]
            quant = None if q is None else Quant(np.array(q["scale"], np.float32), q["zero_point"], int(q["axis"]))
            result = Tensor(t["name"], tuple(t["shape"]), t["dtype"], quant, value)
            if value is not None and (value.shape != result.shape or value.dtype.name != t["dtype"]):
                raise damaged(f"constant {t['name']} is {value.dtype} {value.shape}")
            return result

        tensors = {t["name"]: tensor(t, arrays[f"t{k}"] if t["const"] else None) for k, t in enumerate(doc["tensors"])}
        states = {t["name"]: tensor(t, arrays[f"s{k}"]) for k, t in enumerate(doc.get("states", []))}
        op_list = []
        for o in doc["ops"]:
            cls = OP_CLASSES.get(o["class"])
            if cls is None:
                raise damaged(f"unknown operator class {o['class']!r}")
            attrs = {}
            for f in dataclasses.fields(cls):
                if f.name in _BASE_FIELDS:
                    continue
                v = o["attrs"][f.name]
                attrs[f.name] = type(f.default)(v) if isinstance(f.default, enum.Enum) else _tupled(v)
            op_list.append(cls(o["name"], list(o["inputs"]), list(o["outputs"]), **attrs))
        return Graph(doc["name"], tensors, op_list, list(doc["inputs"]), list(doc["outputs"]), doc["source_hash"],
                     list(doc["notes"]), requant=doc["requant"], states=states)
    except EdgeqError:
        raise
    except FileNotFoundError as e:
        raise EdgeqError(f"{json_path.parent} has no reference graph ({Path(e.filename).name}); it was built by an "
                         "older edgeq or damaged: rebuild it with `edgeq build`.") from None
    except (OSError, ValueError, KeyError, TypeError, AssertionError, AttributeError) as e:
        raise damaged(f"{type(e).__name__}: {e}") from None
