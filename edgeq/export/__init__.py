"""Exports of an integer graph to other toolchains' formats."""
from edgeq.export.tflite_writer import to_tflite, write_tflite

__all__ = ["to_tflite", "write_tflite"]
