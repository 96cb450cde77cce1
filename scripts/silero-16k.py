#!/usr/bin/env python3
"""Derives media/vad/silero_vad_v5_16k.onnx from media/vad/silero_vad_v5.onnx.

Why. The shipped Silero v5 graph is a TorchScript export that keeps Python's control flow: an `If`
on the sample rate (16 kHz / 8 kHz branches with their own weights), then `If`s that squeeze a
dimension when it is 1 and that handle unbatched input, and ~60 shape nodes (Shape, Gather, Equal,
Unsqueeze, Identity) around ~10 nodes of arithmetic. onnxruntime runs each node with a fixed cost;
for one 32 ms window they cost more than the arithmetic (measured: media/vad/README.md).

What. The same arithmetic, written as a plain graph for 16 kHz and 2-D input, with the 16 kHz
branch's weights unchanged (the LSTM weights are reordered from PyTorch's gate order i,f,g,o to
ONNX's i,o,f,c, as the original graph does at run time):

  input [B, 576] --Pad (reflect, 64 on the right)--> [B, 640] --Unsqueeze--> [B, 1, 640]
  --Conv (STFT basis, 258 x 256, stride 128)--> [B, 258, 4] --square, sum real and imaginary,
  sqrt--> [B, 129, 4] --4 x (Conv + Relu)--> [B, 128, 1] --Reshape--> [1, B, 128]
  --LSTM (h, c from state [2, B, 128])--> h', c' --Concat--> stateN [2, B, 128]
  h' --Relu, Gemm (128 -> 1), Sigmoid--> output [B, 1]

Inputs `input` and `state`, outputs `output` and `stateN`, as the original, without `sr`.
tests/unit/media/silero-16k.test.ts checks with onnxruntime-node that both models give the same
probabilities and states on speech and noise, window after window.

Run (needs Debian's python3-onnx and python3-numpy; not needed to build or run the server):
  python3 scripts/silero-16k.py [source.onnx] [derived.onnx]
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SOURCE = sys.argv[1] if len(sys.argv) > 1 else 'media/vad/silero_vad_v5.onnx'
TARGET = sys.argv[2] if len(sys.argv) > 2 else 'media/vad/silero_vad_v5_16k.onnx'
PREFIX = 'If_0_then_branch__Inline_0__'


def sixteen_k_branch(model):
    """The branch of the top-level If taken when sr == 16000."""
    nodes = model.graph.node
    constant, equal, branch = nodes[0], nodes[1], nodes[2]
    assert constant.op_type == 'Constant' and int(numpy_helper.to_array(constant.attribute[0].t)) == 16000
    assert equal.op_type == 'Equal' and list(equal.input) == ['sr', constant.output[0]]
    assert branch.op_type == 'If' and branch.input[0] == equal.output[0]
    return next(a.g for a in branch.attribute if a.name == 'then_branch')


def weights(graph):
    found = {}
    for node in graph.node:
        if node.op_type == 'Constant' and node.output[0].startswith(PREFIX) and '/' not in node.output[0]:
            found[node.output[0][len(PREFIX):]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def conv_attributes(graph, output_name):
    node = next(n for n in graph.node if n.op_type == 'Conv' and n.output[0] == PREFIX + output_name)
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def ifgo_to_iofc(matrix):
    i, f, g, o = np.split(matrix, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def main():
    source = onnx.load(SOURCE)
    branch = sixteen_k_branch(source)
    w = weights(branch)
    hidden = 128
    initializers = [
        numpy_helper.from_array(np.array([0, 0, 0, 64], dtype=np.int64), 'pads'),
        numpy_helper.from_array(np.array([1], dtype=np.int64), 'axis1'),
        numpy_helper.from_array(w['stft.forward_basis_buffer'], 'stft_basis'),
        numpy_helper.from_array(np.array([0, 2, 129, -1], dtype=np.int64), 'split_complex'),
        numpy_helper.from_array(np.array([1, -1, hidden], dtype=np.int64), 'as_sequence'),
        numpy_helper.from_array(np.array([-1, hidden], dtype=np.int64), 'as_rows'),
        numpy_helper.from_array(ifgo_to_iofc(w['decoder.rnn.weight_ih'])[None], 'lstm_w'),
        numpy_helper.from_array(ifgo_to_iofc(w['decoder.rnn.weight_hh'])[None], 'lstm_r'),
        numpy_helper.from_array(np.concatenate([ifgo_to_iofc(w['decoder.rnn.bias_ih']),
                                                ifgo_to_iofc(w['decoder.rnn.bias_hh'])])[None], 'lstm_b'),
        numpy_helper.from_array(w['decoder.decoder.2.weight'].reshape(1, hidden), 'head_w'),
        numpy_helper.from_array(w['decoder.decoder.2.bias'], 'head_b'),
    ]
    nodes = [
        helper.make_node('Pad', ['input', 'pads'], ['padded'], mode='reflect'),
        helper.make_node('Unsqueeze', ['padded', 'axis1'], ['signal']),
        helper.make_node('Conv', ['signal', 'stft_basis'], ['spectrum'], **conv_attributes(branch, '/stft/Conv_output_0')),
        helper.make_node('Mul', ['spectrum', 'spectrum'], ['power_parts']),
        helper.make_node('Reshape', ['power_parts', 'split_complex'], ['power_pairs']),
        helper.make_node('ReduceSum', ['power_pairs', 'axis1'], ['power'], keepdims=0),
        helper.make_node('Sqrt', ['power'], ['magnitude']),
    ]
    features = 'magnitude'
    for layer in range(4):
        name = f'encoder.{layer}.reparam_conv'
        initializers += [numpy_helper.from_array(w[f'{name}.weight'], f'{name}.weight'),
                         numpy_helper.from_array(w[f'{name}.bias'], f'{name}.bias')]
        attributes = conv_attributes(branch, f'/encoder/{layer}/reparam_conv/Conv_output_0')
        nodes += [helper.make_node('Conv', [features, f'{name}.weight', f'{name}.bias'], [f'encoder{layer}'], **attributes),
                  helper.make_node('Relu', [f'encoder{layer}'], [f'encoder{layer}_relu'])]
        features = f'encoder{layer}_relu'
    nodes += [
        helper.make_node('Reshape', [features, 'as_sequence'], ['sequence']),
        helper.make_node('Split', ['state'], ['h0', 'c0'], axis=0),
        helper.make_node('LSTM', ['sequence', 'lstm_w', 'lstm_r', 'lstm_b', '', 'h0', 'c0'], ['', 'h1', 'c1'], hidden_size=hidden),
        helper.make_node('Concat', ['h1', 'c1'], ['stateN'], axis=0),
        helper.make_node('Relu', ['h1'], ['h1_relu']),
        helper.make_node('Reshape', ['h1_relu', 'as_rows'], ['rows']),
        helper.make_node('Gemm', ['rows', 'head_w', 'head_b'], ['logit'], transB=1),
        helper.make_node('Sigmoid', ['logit'], ['output']),
    ]
    graph = helper.make_graph(
        nodes, 'silero_vad_v5_16k',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, ['batch', 576]),
         helper.make_tensor_value_info('state', TensorProto.FLOAT, [2, 'batch', hidden])],
        [helper.make_tensor_value_info('output', TensorProto.FLOAT, ['batch', 1]),
         helper.make_tensor_value_info('stateN', TensorProto.FLOAT, [2, 'batch', hidden])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 16)], producer_name='scripts/silero-16k.py')
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, TARGET)
    print(f'{TARGET}: {len(nodes)} nodes (the 16 kHz branch of the source holds {count_nodes(branch)}, counting both sides of its Ifs)')


def count_nodes(graph):
    total = 0
    for node in graph.node:
        total += 1
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                total += count_nodes(attribute.g)
    return total


if __name__ == '__main__':
    main()
