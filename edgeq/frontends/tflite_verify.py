"""A flatbuffer verifier for TFLite models: the checks flatbuffers::Verifier makes when TFLite loads a model
(VerifyModelBuffer over schema.fbs), before edgeq reads a single field.

The `tflite` bindings read wherever an offset points and never look at fields edgeq does not use, so a file with
broken signature or metadata offsets would build while TFLite Micro refuses it. Every table, vtable, vector and
string the schema names, wherever it is reached from the root, must lie inside the file, with offsets, lengths,
vtables and scalars aligned as the verifier demands; strings end in a zero byte; union members are checked as
their declared table. A field the schema gives no type (an unknown union member's, or one newer than edgeq's
schema) must at least start inside the file.
"""
from __future__ import annotations

import struct

import tflite

from edgeq.errors import EdgeqError

# Each table's fields in schema.fbs's order: (name, kind), kind a scalar's byte size, "str", ("vec", element
# size), ("table", name), ("tables", name: a vector of tables) or ("union", table names by type value), whose
# type is the field before it. None: a deprecated field of unknown type.
_OPTIONS = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and v}
_OPTIONS2 = {v: k for k, v in vars(tflite.BuiltinOptions2).items() if not k.startswith("_") and v}
_SPARSE_INDEX = {1: "Int32Vector", 2: "Uint16Vector", 3: "Uint8Vector"}
SCHEMA: dict[str, list] = {
    "Model": [("version", 4), ("operator_codes", ("tables", "OperatorCode")), ("subgraphs", ("tables", "SubGraph")),
              ("description", "str"), ("buffers", ("tables", "Buffer")), ("metadata_buffer", ("vec", 4)),
              ("metadata", ("tables", "Metadata")), ("signature_defs", ("tables", "SignatureDef"))],
    "OperatorCode": [("deprecated_builtin_code", 1), ("custom_code", "str"), ("version", 4), ("builtin_code", 4)],
    "SubGraph": [("tensors", ("tables", "Tensor")), ("inputs", ("vec", 4)), ("outputs", ("vec", 4)),
                 ("operators", ("tables", "Operator")), ("name", "str"), ("debug_metadata_index", 4)],
    "Tensor": [("shape", ("vec", 4)), ("type", 1), ("buffer", 4), ("name", "str"),
               ("quantization", ("table", "QuantizationParameters")), ("is_variable", 1),
               ("sparsity", ("table", "SparsityParameters")), ("shape_signature", ("vec", 4)), ("has_rank", 1),
               ("variant_tensors", ("tables", "VariantSubType"))],
    "QuantizationParameters": [("min", ("vec", 4)), ("max", ("vec", 4)), ("scale", ("vec", 4)),
                               ("zero_point", ("vec", 8)), ("details_type", 1),
                               ("details", ("union", {1: "CustomQuantization"})), ("quantized_dimension", 4)],
    "CustomQuantization": [("custom", ("vec", 1))],
    "SparsityParameters": [("traversal_order", ("vec", 4)), ("block_map", ("vec", 4)),
                           ("dim_metadata", ("tables", "DimensionMetadata"))],
    "DimensionMetadata": [("format", 1), ("dense_size", 4), ("array_segments_type", 1),
                          ("array_segments", ("union", _SPARSE_INDEX)), ("array_indices_type", 1),
                          ("array_indices", ("union", _SPARSE_INDEX))],
    "Int32Vector": [("values", ("vec", 4))], "Uint16Vector": [("values", ("vec", 2))],
    "Uint8Vector": [("values", ("vec", 1))],
    "VariantSubType": [("shape", ("vec", 4)), ("type", 1), ("has_rank", 1)],
    "Operator": [("opcode_index", 4), ("inputs", ("vec", 4)), ("outputs", ("vec", 4)), ("builtin_options_type", 1),
                 ("builtin_options", ("union", _OPTIONS)), ("custom_options", ("vec", 1)),
                 ("custom_options_format", 1), ("mutating_variable_inputs", ("vec", 1)),
                 ("intermediates", ("vec", 4)), ("large_custom_options_offset", 8), ("large_custom_options_size", 8),
                 ("builtin_options_2_type", 1), ("builtin_options_2", ("union", _OPTIONS2)),
                 ("debug_metadata_index", 4)],
    "Buffer": [("data", ("vec", 1)), ("offset", 8), ("size", 8)],
    "Metadata": [("name", "str"), ("buffer", 4)],
    "SignatureDef": [("inputs", ("tables", "TensorMap")), ("outputs", ("tables", "TensorMap")),
                     ("signature_key", "str"), ("deprecated_tag", None), ("subgraph_index", 4)],
    "TensorMap": [("name", "str"), ("tensor_index", 4)],
    # the option tables that hold vectors or strings (tests/test_tflite_verify.py checks this list against the
    # `tflite` bindings); all other option tables hold scalars only
    "ReshapeOptions": [("new_shape", ("vec", 4))],
    "SqueezeOptions": [("squeeze_dims", ("vec", 4))],
    "ConcatEmbeddingsOptions": [("num_channels", 4), ("num_columns_per_channel", ("vec", 4)),
                                ("embedding_dim_per_channel", ("vec", 4))],
    "BucketizeOptions": [("boundaries", ("vec", 4))],
    "VarHandleOptions": [("container", "str"), ("shared_name", "str")],
    "StablehloBroadcastInDimOptions": [("broadcast_dimensions", ("vec", 8))],
    "StablehloSliceOptions": [("start_indices", ("vec", 8)), ("limit_indices", ("vec", 8)), ("strides", ("vec", 8))],
    "StablehloConvolutionOptions": [("window_strides", ("vec", 8)), ("padding", ("vec", 8)),
                                    ("lhs_dilation", ("vec", 8)), ("rhs_dilation", ("vec", 8)),
                                    ("window_reversal", ("vec", 1)), ("input_batch_dimension", 8),
                                    ("input_feature_dimension", 8), ("input_spatial_dimensions", ("vec", 8)),
                                    ("kernel_input_feature_dimension", 8), ("kernel_output_feature_dimension", 8),
                                    ("kernel_spatial_dimensions", ("vec", 8)), ("output_batch_dimension", 8),
                                    ("output_feature_dimension", 8), ("output_spatial_dimensions", ("vec", 8)),
                                    ("feature_group_count", 8), ("batch_group_count", 8),
                                    ("precision_config", ("vec", 4))],
    "StablehloCustomCallOptions": [("call_target_name", "str"), ("has_side_effect", 1), ("backend_config", "str"),
                                   ("api_version", 4), ("called_computations", ("vec", 4)),
                                   ("custom_attributes", ("vec", 1))],
    "StablehloReduceOptions": [("dimensions", ("vec", 8)), ("body_subgraph_index", 4)],
    "StablehloScatterOptions": [("indices_are_sorted", 1), ("update_window_dims", ("vec", 8)),
                                ("inserted_window_dims", ("vec", 8)), ("scatter_dims_to_operand_dims", ("vec", 8)),
                                ("index_vector_dim", 8), ("unique_indices", 1),
                                ("update_computation_subgraph_index", 4)],
    "StablehloDynamicSliceOptions": [("slice_sizes", ("vec", 8))],
    "StablehloPadOptions": [("edge_padding_low", ("vec", 8)), ("edge_padding_high", ("vec", 8)),
                            ("interior_padding", ("vec", 8))],
    "StablehloDotGeneralOptions": [("lhs_batching_dimensions", ("vec", 8)), ("rhs_batching_dimensions", ("vec", 8)),
                                   ("lhs_contracting_dimensions", ("vec", 8)),
                                   ("rhs_contracting_dimensions", ("vec", 8)), ("precision_config", ("vec", 4))],
    "StablehloReduceWindowOptions": [("window_dimensions", ("vec", 8)), ("window_strides", ("vec", 8)),
                                     ("base_dilations", ("vec", 8)), ("window_dilations", ("vec", 8)),
                                     ("padding", ("vec", 8)), ("body_subgraph_index", 4)],
    "StablehloGatherOptions": [("offset_dims", ("vec", 8)), ("collapsed_slice_dims", ("vec", 8)),
                               ("start_index_map", ("vec", 8)), ("index_vector_dim", 8), ("slice_sizes", ("vec", 8)),
                               ("indices_are_sorted", 1)],
    "StablehloTransposeOptions": [("permutation", ("vec", 8))],
    "StableHLOCompositeOptions": [("name", "str"), ("decomposition_subgraph_index", 4),
                                  ("composite_attributes", ("vec", 1)), ("composite_attributes_format", 1),
                                  ("version", 4)],
}
MAX_DEPTH = 64  # flatbuffers::Verifier's defaults
MAX_TABLES = 1_000_000


class _Damaged(Exception):
    pass


class _Verifier:
    def __init__(self, data: bytes):
        self.data = data
        self.n = len(data)
        self.tables = 0

    def need(self, pos: int, size: int, align: int, what: str) -> None:
        if pos < 0 or pos + size > self.n:
            raise _Damaged(f"{what} at byte {pos} runs past the end of the {self.n}-byte file")
        if pos % align:
            raise _Damaged(f"{what} at byte {pos} is not {align}-byte aligned")

    def u32(self, pos: int, what: str) -> int:
        self.need(pos, 4, 4, what)
        return struct.unpack_from("<I", self.data, pos)[0]

    def follow(self, pos: int, what: str) -> int:
        """The target of the uoffset at pos."""
        off = self.u32(pos, f"the offset to {what}")
        if off == 0 or off >= 1 << 31:
            raise _Damaged(f"the offset to {what} at byte {pos} is {off}")
        return pos + off

    def vector(self, pos: int, elem: int, what: str) -> int:
        """Checks the vector at pos and returns its length."""
        n = self.u32(pos, f"the length of {what}")
        if n * elem > self.n:
            raise _Damaged(f"{what} at byte {pos} claims {n} elements")
        self.need(pos + 4, n * elem, 1, what)  # flatbuffers' verifier aligns the length only
        return n

    def table(self, pos: int, name: str | None, what: str, depth: int) -> None:
        self.tables += 1
        if depth > MAX_DEPTH or self.tables > MAX_TABLES:
            raise _Damaged(f"{what} nests deeper than {MAX_DEPTH} tables or the file holds over {MAX_TABLES}")
        self.need(pos, 4, 4, what)
        vt = pos - struct.unpack_from("<i", self.data, pos)[0]
        self.need(vt, 4, 2, f"the vtable of {what}")
        vsize, tsize = struct.unpack_from("<HH", self.data, vt)
        if vsize % 2 or vsize < 4:
            raise _Damaged(f"the vtable of {what} at byte {vt} has size {vsize}")
        self.need(vt, vsize, 2, f"the vtable of {what}")
        offsets = struct.unpack_from(f"<{(vsize - 4) // 2}H", self.data, vt + 4)
        self.need(pos, tsize, 1, what)
        fields = SCHEMA.get(name, []) if name else []
        for slot, off in enumerate(offsets):
            if off == 0:
                continue
            field, kind = fields[slot] if slot < len(fields) else (f"field{slot}", None)
            at = pos + off
            label = f"{what}.{field}"
            if kind is None:  # a field edgeq has no type for: at least one byte of it must be in the file
                self.need(at, 1, 1, label)
            elif isinstance(kind, int):
                self.need(at, kind, kind, label)
            elif kind == "str":
                target = self.follow(at, label)
                n = self.vector(target, 1, label)
                self.need(target + 4 + n, 1, 1, f"the end of string {label}")
                if self.data[target + 4 + n] != 0:
                    raise _Damaged(f"string {label} at byte {target} does not end in a zero byte")
            elif kind[0] == "vec":
                self.vector(self.follow(at, label), kind[1], label)
            elif kind[0] == "table":
                self.table(self.follow(at, label), kind[1], label, depth + 1)
            elif kind[0] == "tables":
                vec = self.follow(at, label)
                for i in range(self.vector(vec, 4, label)):
                    item = f"{label}[{i}]"
                    self.table(self.follow(vec + 4 + 4 * i, item), kind[1], item, depth + 1)
            else:  # a union: its type is the byte field in the slot before it
                type_off = offsets[slot - 1] if slot >= 1 else 0
                utype = self.data[pos + type_off] if type_off else 0
                if utype:
                    self.table(self.follow(at, label), kind[1].get(utype), label, depth + 1)


def verify_tflite(data: bytes, origin: str) -> None:
    """Raises EdgeqError naming what is damaged when data is not a well-formed TFLite flatbuffer."""
    v = _Verifier(data)
    try:
        if len(data) >= 1 << 31:
            raise _Damaged("the file is 2 GiB or larger, beyond any flatbuffer")
        v.table(v.follow(0, "the model"), "Model", "model", 0)
    except _Damaged as e:
        raise EdgeqError(
            f"{origin} is a damaged TFLite file: {e}, so TFLite's flatbuffer verifier refuses it "
            "(TFLite Micro cannot load it either). Export or copy the model again.") from None
