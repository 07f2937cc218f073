"""Exports of a stats db to other tools' formats, read through ``StatsDB``'s public API only.

``tensorboard.export_projector``: TensorBoard's embedding projector (``deepviz export tensorboard``).
"""
