"""Quantisation: static int8/int16 with calibration, dynamic, fp16; target-aware schemes, accuracy repair, reports."""
