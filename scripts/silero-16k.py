#!/usr/bin/env python3
"""Derives media/vad/silero_vad_v5_16k.onnx from media/vad/silero_vad_v5.onnx.

Why. The shipped Silero v5 graph is a TorchScript export that keeps Python's control flow: an `If`
on the sample rate (16 kHz / 8 kHz branches with their own weights), then `If`s that squeeze a
dimension when it is 1 and that handle unbatched input, and ~60 shape nodes (Shape, Gather, Equal,
Unsqueeze, Identity) around ~15 nodes of arithmetic. onnxruntime runs each node with a fixed cost;
for one 32 ms window they cost more than the arithmetic (measured: media/vad/README.md).
And its convolutions slide over only 4, 2 or 1 time steps: onnxruntime turns each into a matrix
product whose narrow side is the time steps, which fills 4, 2 or 1 of the 16 lanes of the
AVX-512 matrix kernel. Written as a matrix product over [batch x time, channels], the wide side
is the channels (64 to 258) and the batch adds rows: a window costs far less in a batch.

What. The same arithmetic, for 16 kHz and 2-D input, with the 16 kHz branch's weights unchanged
in value (transposed and reordered only), in time-major rows:

  input [B, 576] --Pad (reflect, 64 on the right)--> [B, 640] --5 hops of 128, frames = pairs of
  hops--> [B x 4, 256] --MatMul (the STFT basis: periodic Hann x DFT, 256 -> 129 real + 129
  imaginary)--> [B x 4, 258] --square, sum real and imaginary, sqrt--> [B x 4, 129]
  --4 x conv as (Pad time, Gather the taps, Gemm, Relu; taps that read only padding left out,
  and with them Pad and Gather in the last two)--> [B, 128] --Reshape--> [1, B, 128]
  --LSTM (h, c from state [2, B, 128])--> h', c' --Concat--> stateN
  h' --Relu, Gemm (128 -> 1), Sigmoid--> output [B, 1]

The LSTM weights are reordered from PyTorch's gate order i,f,g,o to ONNX's i,o,f,c, as the
original graph does at run time. Inputs `input` and `state`, outputs `output` and `stateN`, as the
original, without `sr`. tests/unit/media/voice-activity.test.ts checks with onnxruntime-node that
both models give the same probabilities on speech, noise, a tone and silence, window after window.

Run (needs Debian's python3-onnx and python3-numpy; not needed to build or run the server):
  python3 scripts/silero-16k.py [source.onnx] [derived.onnx] [derived.weights]

It also writes the derived model's weights as one flat file, silero_vad_v5_16k.weights, for the
native kernel (media/vad/native/silero_vad.c; layout in write_weights below).
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SOURCE = sys.argv[1] if len(sys.argv) > 1 else 'media/vad/silero_vad_v5.onnx'
TARGET = sys.argv[2] if len(sys.argv) > 2 else 'media/vad/silero_vad_v5_16k.onnx'
WEIGHTS = sys.argv[3] if len(sys.argv) > 3 else 'media/vad/silero_vad_v5_16k.weights'
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


def conv_as_gemm(nodes, inits, rows, t_in, weight, bias, attributes, name):
    """Conv1d + Relu as a matrix product. `rows` is [B x t_in, C] (time-major rows); returns [B x t_out, C_out].

    Taps that fall only on the zero padding are left out, and with them the Pad and Gather when
    what is left reads the input as it is (the last two layers: 2 -> 1 and 1 -> 1 time steps).
    """
    out_ch, in_ch, k = weight.shape
    (pad_l, pad_r), stride = attributes['pads'], attributes['strides'][0]
    t_out = (t_in + pad_l + pad_r - k) // stride + 1
    source = np.array([[t * stride + j - pad_l for j in range(k)] for t in range(t_out)])  # input step per tap, <0 or >=t_in: padding
    taps = [j for j in range(k) if ((source[:, j] >= 0) & (source[:, j] < t_in)).any()]
    source = source[:, taps]
    left, right = max(0, -source.min()), max(0, source.max() - (t_in - 1))
    columns = weight[:, :, taps].transpose(2, 1, 0).reshape(len(taps) * in_ch, out_ch)
    inits += [numpy_helper.from_array(np.ascontiguousarray(columns), f'{name}_w'), numpy_helper.from_array(bias, f'{name}_b')]
    x = rows
    if left or right or not np.array_equal(source.flatten(), np.arange(t_in)):
        inits += [numpy_helper.from_array(np.array([-1, t_in, in_ch], dtype=np.int64), f'{name}_steps_shape'),
                  numpy_helper.from_array((source + left).astype(np.int64), f'{name}_taps')]
        nodes.append(helper.make_node('Reshape', [x, f'{name}_steps_shape'], [f'{name}_steps']))
        x = f'{name}_steps'
        if left or right:
            inits.append(numpy_helper.from_array(np.array([0, left, 0, 0, right, 0], dtype=np.int64), f'{name}_pads'))
            nodes.append(helper.make_node('Pad', [x, f'{name}_pads'], [f'{name}_padded']))
            x = f'{name}_padded'
        nodes.append(helper.make_node('Gather', [x, f'{name}_taps'], [f'{name}_cols'], axis=1))
        x = f'{name}_cols'
    if x != rows or t_in > 1:
        inits.append(numpy_helper.from_array(np.array([-1, len(taps) * in_ch], dtype=np.int64), f'{name}_im2col_shape'))
        nodes.append(helper.make_node('Reshape', [x, f'{name}_im2col_shape'], [f'{name}_im2col']))
        x = f'{name}_im2col'
    nodes += [helper.make_node('Gemm', [x, f'{name}_w', f'{name}_b'], [f'{name}_linear']),
              helper.make_node('Relu', [f'{name}_linear'], [f'{name}_out'])]
    return f'{name}_out', t_out


def main():
    source = onnx.load(SOURCE)
    branch = sixteen_k_branch(source)
    w = weights(branch)
    hidden = 128
    basis = w['stft.forward_basis_buffer'][:, 0, :]  # [258, 256]
    inits = [
        numpy_helper.from_array(np.array([0, 0, 0, 64], dtype=np.int64), 'pads'),
        numpy_helper.from_array(np.array([0, 5, 128], dtype=np.int64), 'as_hops'),
        numpy_helper.from_array(np.array([[0, 1], [1, 2], [2, 3], [3, 4]], dtype=np.int64), 'frame_hops'),
        numpy_helper.from_array(np.array([-1, 256], dtype=np.int64), 'as_frames'),
        numpy_helper.from_array(basis.T.copy(), 'stft_basis'),
        numpy_helper.from_array(np.array([-1, 2, 129], dtype=np.int64), 'split_complex'),
        numpy_helper.from_array(np.array([1], dtype=np.int64), 'axis1'),
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
        helper.make_node('Reshape', ['padded', 'as_hops'], ['hops']),
        helper.make_node('Gather', ['hops', 'frame_hops'], ['frame_parts'], axis=1),
        helper.make_node('Reshape', ['frame_parts', 'as_frames'], ['frames']),
        helper.make_node('MatMul', ['frames', 'stft_basis'], ['spectrum']),
        helper.make_node('Mul', ['spectrum', 'spectrum'], ['power_parts']),
        helper.make_node('Reshape', ['power_parts', 'split_complex'], ['power_pairs']),
        helper.make_node('ReduceSum', ['power_pairs', 'axis1'], ['power'], keepdims=0),
        helper.make_node('Sqrt', ['power'], ['magnitude']),
    ]
    features, t = 'magnitude', 4  # rows: [B x 4 steps, 129 bins]
    for layer in range(4):
        name = f'encoder.{layer}.reparam_conv'
        attributes = conv_attributes(branch, f'/encoder/{layer}/reparam_conv/Conv_output_0')
        features, t = conv_as_gemm(nodes, inits, features, t, w[f'{name}.weight'], w[f'{name}.bias'], attributes, f'encoder{layer}')
    assert t == 1
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
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 16)], producer_name='scripts/silero-16k.py')
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, TARGET)
    print(f'{TARGET}: {len(nodes)} nodes (the 16 kHz branch of the source holds {count_nodes(branch)}, counting both sides of its Ifs)')
    write_weights(model, WEIGHTS)


def write_weights(model, path):
    """The derived model's weights for media/vad/native/silero_vad.c, in the layout its header gives.

    A header of 16 bytes (b'SILERO16', format version 3, the count of floats, as little-endian
    uint32s), then float32 little-endian. Each matrix [inputs][outputs] (as the Gemms hold them) has
    its outputs padded with zeros to a multiple of 16 and is stored as panels of 16 outputs,
    [outputs / 16][inputs][16], so that the kernel reads each panel as one sequential stream; then
    its bias, padded alike.
    """
    t = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}

    def layer(matrix, bias):
        k, n = matrix.shape
        padded = -(-n // 16) * 16
        m = np.zeros((k, padded), dtype=np.float32)
        m[:, :n] = matrix
        b = np.zeros(padded, dtype=np.float32)
        b[:n] = bias
        panels = m.reshape(k, padded // 16, 16).transpose(1, 0, 2)
        return [panels, b]

    parts = [
        *layer(t['stft_basis'], np.zeros(258, dtype=np.float32)),
        *layer(t['encoder0_w'], t['encoder0_b']),
        *layer(t['encoder1_w'], t['encoder1_b']),
        *layer(t['encoder2_w'], t['encoder2_b']),
        *layer(t['encoder3_w'], t['encoder3_b']),
        *layer(np.concatenate([t['lstm_w'][0].T, t['lstm_r'][0].T], axis=0), t['lstm_b'][0, :512] + t['lstm_b'][0, 512:]),
        t['head_w'][0], t['head_b'],
    ]
    expected = [(17, 256, 16), (272,), (8, 387, 16), (128,), (4, 384, 16), (64,), (4, 128, 16), (64,), (8, 64, 16), (128,),
                (32, 256, 16), (512,), (128,), (1,)]
    assert [p.shape for p in parts] == expected, [p.shape for p in parts]
    floats = np.concatenate([np.ascontiguousarray(p, dtype='<f4').ravel() for p in parts])
    with open(path, 'wb') as out:
        out.write(b'SILERO16' + np.array([3, floats.size], dtype='<u4').tobytes() + floats.tobytes())
    print(f'{path}: {floats.size} weights')


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
