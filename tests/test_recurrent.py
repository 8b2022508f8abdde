"""Recurrent layers (SimpleRNN, LSTM, GRU), Embedding and sequence data through a model.

The kernels themselves are compared with their NumPy twins in test_properties.py; here: the
twins against finite differences (the equations are right), the layers' Keras surface (arguments,
weight shapes and order, parameter counts, errors), both backends and the one-call native step
agreeing, gradient checks of whole models, save/load, thread-count independence, and learning.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn import reference as R
from fastnn.gradcheck import gradient_check

CELLS = [layers.SimpleRNN, layers.LSTM, layers.GRU]


def _seq(n=6, t=5, f=3, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=(n, t, f)).astype(dtype)


# -- the twins against central differences (float64) -------------------------------------------
def _twin_loss_and_grads(cell, x, W, Rk, b, h0, c0, dy, reverse, sequences, reset_after,
                         rmask=None, xmask=None):
    n, t, _ = x.shape
    u = Rk.shape[0]
    if cell == "simple_rnn":
        z = np.empty((n, t, u))
        h = R.simple_rnn_forward(x, W, Rk, b, h0, "tanh", 0.0, reverse, z=z, rmask=rmask,
                                 xmask=xmask)
        grads = R.simple_rnn_backward(dy, x, W, Rk, h0, z, h, "tanh", 0.0, reverse, sequences,
                                      dbias=np.empty_like(b), rmask=rmask, xmask=xmask)
    elif cell == "lstm":
        cache = [np.empty((n, t, 4 * u)), np.empty((n, t, 4 * u)), np.empty((n, t, u)),
                 np.empty((n, t, u))]
        h = R.lstm_forward(x, W, Rk, b, h0, c0, "tanh", 0.0, "sigmoid", 0.0, reverse, *cache,
                           rmask=rmask, xmask=xmask)
        grads = R.lstm_backward(dy, x, W, Rk, h0, c0, *cache, h, "tanh", 0.0, "sigmoid", 0.0,
                                reverse, sequences, dbias=np.empty_like(b), rmask=rmask,
                                xmask=xmask)
    else:
        cache = [np.empty((n, t, 3 * u)) for _ in range(3)]
        h = R.gru_forward(x, W, Rk, b, h0, "tanh", 0.0, "sigmoid", 0.0, reset_after, reverse, *cache,
                          rmask=rmask, xmask=xmask)
        grads = R.gru_backward(dy, x, W, Rk, h0, *cache, h, "tanh", 0.0, "sigmoid", 0.0,
                               reset_after, reverse, sequences, dbias=np.empty_like(b), rmask=rmask,
                               xmask=xmask)
    out = h if sequences else h[:, -1]
    return float((out * dy).sum()), grads


@pytest.mark.parametrize("cell,k,reset_after", [("simple_rnn", 1, True), ("lstm", 4, True),
                                                 ("gru", 3, True), ("gru", 3, False)])
@pytest.mark.parametrize("reverse,sequences,masked", [(False, False, False), (False, True, False),
                                                      (True, False, False), (True, True, False),
                                                      (False, True, True), (True, False, True)])
def test_twins_backpropagate_through_time_as_central_differences(cell, k, reset_after, reverse,
                                                                 sequences, masked):
    """masked: with a recurrent dropout mask and a per-gate input dropout mask (constants of the
    computation, one per gate)."""
    rng = np.random.default_rng(1)
    n, t, f, u = 2, 4, 3, 3
    args = dict(x=rng.normal(size=(n, t, f)), W=rng.normal(size=(f, k * u)) * 0.5,
                Rk=rng.normal(size=(u, k * u)) * 0.5,
                b=rng.normal(size=(2, 3 * u) if cell == "gru" and reset_after else (k * u,)) * 0.3,
                h0=rng.normal(size=(n, u)) * 0.5, c0=rng.normal(size=(n, u)) * 0.5)
    if masked:
        args["rmask"] = (rng.random((n, k * u)) > 0.4) / 0.6
        args["xmask"] = (rng.random((n, k * f)) > 0.4) / 0.6
    dy = rng.normal(size=(n, t, u) if sequences else (n, u))
    names = ["x", "W", "Rk", "b", "h0"] + (["c0"] if cell == "lstm" else [])
    _, grads = _twin_loss_and_grads(cell, dy=dy, reverse=reverse, sequences=sequences,
                                    reset_after=reset_after, **args)
    for name, analytic in zip(names, grads):
        a = args[name]
        numeric = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            a[i] = old + 1e-6
            up, _ = _twin_loss_and_grads(cell, dy=dy, reverse=reverse, sequences=sequences,
                                         reset_after=reset_after, **args)
            a[i] = old - 1e-6
            down, _ = _twin_loss_and_grads(cell, dy=dy, reverse=reverse, sequences=sequences,
                                           reset_after=reset_after, **args)
            a[i] = old
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


# -- the Keras surface ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls,k", [(layers.SimpleRNN, 1), (layers.LSTM, 4), (layers.GRU, 3)])
def test_weights_have_keras_shapes_order_and_parameter_counts(cls, k):
    layer = cls(64)
    model = fastnn.Sequential([layers.Input(shape=(28, 28)), layer, layers.Dense(10)])
    names = [name for name, _, _ in layer._weights]
    assert names == ["kernel", "recurrent_kernel", "bias"]
    shapes = [w.shape for w in layer.get_weights()]
    bias = (2, 3 * 64) if cls is layers.GRU else (k * 64,)
    assert shapes == [(28, k * 64), (64, k * 64), bias]
    # Keras's summary: k * (units * (features + units) + units), GRU with reset_after: one more
    # bias row, k * units
    expected = k * (64 * (28 + 64) + 64) + (3 * 64 if cls is layers.GRU else 0)
    assert layer.count_params() == expected
    assert model.count_params() == expected + 64 * 10 + 10
    assert model.output_shape == (None, 10)


def test_keras_defaults_orthogonal_recurrent_kernel_and_unit_forget_bias():
    lstm = layers.LSTM(8)
    lstm.build((5, 3))
    r = lstm.recurrent_kernel.astype(np.float64)
    np.testing.assert_allclose(r @ r.T, np.eye(8), atol=1e-5)  # orthonormal rows
    assert np.all(lstm.bias[8:16] == 1) and np.all(lstm.bias[:8] == 0) and np.all(lstm.bias[16:] == 0)
    off = layers.LSTM(8, unit_forget_bias=False)
    off.build((5, 3))
    assert np.all(off.bias == 0)
    gru = layers.GRU(4, reset_after=False)
    gru.build((5, 3))
    assert gru.bias.shape == (12,)
    ident = layers.SimpleRNN(4, recurrent_initializer="identity")
    ident.build((5, 2))
    assert np.array_equal(ident.recurrent_kernel, np.eye(4, dtype=np.float32))


@pytest.mark.parametrize("cls", CELLS)
def test_layer_matches_the_equations_in_float64(cls):
    """The layer call against the cell equations written out directly (not through the twin)."""
    with fastnn.backend_scope("native"):
        x = _seq(dtype=np.float64)
        layer = cls(4, return_sequences=True)
        layer.dtype = np.dtype(np.float64)
        out = layer(x)
    W, Rk, b = layer.get_weights()
    sig = lambda v: 1 / (1 + np.exp(-v))
    h = np.zeros((len(x), 4))
    c = np.zeros((len(x), 4))
    for t in range(x.shape[1]):
        if cls is layers.SimpleRNN:
            h = np.tanh(x[:, t] @ W + h @ Rk + b)
        elif cls is layers.LSTM:
            a = x[:, t] @ W + h @ Rk + b
            i, f, g, o = sig(a[:, :4]), sig(a[:, 4:8]), np.tanh(a[:, 8:12]), sig(a[:, 12:])
            c = f * c + i * g
            h = o * np.tanh(c)
        else:
            xa, ra = x[:, t] @ W + b[0], h @ Rk + b[1]
            z, r = sig(xa[:, :4] + ra[:, :4]), sig(xa[:, 4:8] + ra[:, 4:8])
            hh = np.tanh(xa[:, 8:] + r * ra[:, 8:])
            h = z * h + (1 - z) * hh
        np.testing.assert_allclose(out[:, t], h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", CELLS)
def test_go_backwards_reads_the_sequence_reversed_and_returns_states_in_that_order(cls):
    x = _seq()
    fwd = cls(4, return_sequences=True)
    bwd = cls(4, return_sequences=True, go_backwards=True)
    fwd.build(x.shape[1:])
    bwd.build(x.shape[1:])
    bwd.set_weights(fwd.get_weights())
    assert np.array_equal(bwd(x), fwd(x[:, ::-1].copy()))


@pytest.mark.parametrize("cls", CELLS)
def test_return_state_and_initial_state(cls):
    x = _seq()
    layer = cls(4, return_sequences=True, return_state=True)
    outs = layer(x)
    n_states = 2 if cls is layers.LSTM else 1
    assert len(outs) == 1 + n_states
    seq, h = outs[0], outs[1]
    assert np.array_equal(seq[:, -1], h)
    # continuing from the final state equals running the whole sequence at once
    first = layer(x[:, :3].copy())
    second = layer(x[:, 3:].copy(), initial_state=first[1:])
    np.testing.assert_allclose(second[0], seq[:, 3:], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="initial state"):
        layer(x, initial_state=[np.zeros((len(x), 4))] * (n_states + 1))
    with pytest.raises(ValueError, match=r"must have shape \(6, 4\)"):
        layer(x, initial_state=[np.zeros((len(x), 5))] * n_states)
    with pytest.raises(ValueError, match="return_state"):
        fastnn.Sequential([layers.Input(shape=(5, 3)), layer])


@pytest.mark.parametrize("cls", CELLS)
def test_bad_input_is_refused_before_anything_changes(cls):
    model = fastnn.Sequential([layers.Input(shape=(5, 3)), cls(4), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, 5, 3\)"):
        model.fit(np.zeros((4, 15), np.float32), np.zeros((4, 2)), verbose=0)
    with pytest.raises(ValueError, match="shape"):
        model.fit(np.zeros((4, 5, 2), np.float32), np.zeros((4, 2)), verbose=0)
    with pytest.raises(ValueError, match="timesteps"):
        layers.LSTM(3)(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="units"):
        cls(0)
    with pytest.raises(ValueError, match="elementwise"):
        cls(3, activation="softmax")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.optimizer.iterations == 0


def test_embedding_refuses_tokens_out_of_range_or_not_whole():
    model = fastnn.Sequential([layers.Input(shape=(4,)), layers.Embedding(10, 3), layers.LSTM(2),
                               layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    before = model.get_weights()
    for bad, what in (([[0, 1, 2, 10]], r"\[0, 10\)"), ([[0, -1, 2, 3]], r"\[0, 10\)"),
                      ([[0, 1.5, 2, 3]], "integer")):
        with pytest.raises(ValueError, match=what):
            model.fit(np.array(bad), np.zeros((1, 1)), verbose=0)
        with pytest.raises(ValueError, match=what):
            model.predict(np.array(bad))
    with pytest.raises(TypeError, match="integer token ids"):
        layers.Embedding(10, 3)(np.array([["a", "b"]]))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.predict(np.array([[0, 1, 2, 9]])).shape == (1, 1)


# -- recurrent dropout -------------------------------------------------------------------------------
def _cell_forward(cls, layer, x, rmask, h0=None, xmask=None):
    """The twin's forward of a built layer with the mask rmask (None: no recurrent dropout) and
    the per-gate input mask xmask (None: none)."""
    w = [np.asarray(v, np.float64) for v in layer.get_weights()]
    if cls is layers.SimpleRNN:
        return R.simple_rnn_forward(x, *w, h0, rmask=rmask, xmask=xmask)
    if cls is layers.LSTM:
        return R.lstm_forward(x, *w, h0, None, rmask=rmask, xmask=xmask)
    return R.gru_forward(x, *w, h0, reset_after=layer.reset_after, rmask=rmask, xmask=xmask)


@pytest.mark.parametrize("cls,kwargs", [(layers.SimpleRNN, {}), (layers.LSTM, {}), (layers.GRU, {}),
                                        (layers.GRU, {"reset_after": False})])
@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_recurrent_dropout_draws_one_mask_per_sequence_and_gate_from_the_layer_stream(
        backend, cls, kwargs):
    """Training: h_{t-1} * mask in each gate's recurrent product, the mask Dropout's generator on
    the layer's stream [N, k*units] (after the input mask), fixed over the steps; the input mask
    drawn first, one per gate [N, k*features] (Keras 3 with recurrent dropout: each gate's input
    projection reads its own masked x). Inference: the layer without dropout."""
    x = _seq(n=5, t=6, f=3, seed=2, dtype=np.float64)
    with fastnn.backend_scope(backend):
        fastnn.backend.set_floatx("float64")
        try:
            layer = cls(4, recurrent_dropout=0.4, dropout=0.25, return_sequences=True, seed=7,
                        **kwargs)
            plain = cls(4, return_sequences=True, **kwargs)
            layer(x)
            plain(x)
            plain.set_weights(layer.get_weights())
            assert np.array_equal(layer(x), plain(x))  # inference is unaffected
            key, counter = (int(v) for v in layer._stream)
            got = layer(x, training=True)
            assert int(layer._stream[1]) == counter + 2  # the input mask, then the recurrent one
        finally:
            fastnn.backend.set_floatx("float32")
    k = cls._gates
    _, in_mask = R.dropout_forward(np.ones((5, k * 3)), 0.25, key, counter)
    _, rmask = R.dropout_forward(np.ones((5, k * 4)), 0.4, key, counter + 1)
    assert 0 < (rmask == 0).mean() < 1 and set(np.unique(rmask)) == {0.0, 1 / 0.6}
    want = _cell_forward(cls, layer, x, rmask, xmask=in_mask)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    unmasked = _cell_forward(cls, layer, x, None, xmask=in_mask)
    assert not np.allclose(got, unmasked)
    if k > 1:  # one input mask per gate, not one shared by the gates
        blocks = in_mask.reshape(5, k, 3)
        assert any(not np.array_equal(blocks[:, 0], blocks[:, g]) for g in range(1, k))
        shared = _cell_forward(cls, layer, x * in_mask[:, None, :3], rmask)
        assert not np.allclose(got, shared)


@pytest.mark.parametrize("cls,kwargs", [(layers.LSTM, {}), (layers.GRU, {}),
                                        (layers.GRU, {"reset_after": False})])
@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_input_dropout_alone_shares_one_mask_across_the_gates(backend, cls, kwargs):
    """Keras 3 without recurrent dropout (its implementation=2): x times one mask per sequence,
    fixed over the steps, read by every gate; one draw from the layer's stream."""
    x = _seq(n=5, t=6, f=3, seed=3, dtype=np.float64)
    with fastnn.backend_scope(backend):
        fastnn.backend.set_floatx("float64")
        try:
            layer = cls(4, dropout=0.3, return_sequences=True, seed=11, **kwargs)
            layer(x)
            key, counter = (int(v) for v in layer._stream)
            got = layer(x, training=True)
            assert int(layer._stream[1]) == counter + 1
        finally:
            fastnn.backend.set_floatx("float32")
    _, in_mask = R.dropout_forward(np.ones((5, 3)), 0.3, key, counter)
    assert 0 < (in_mask == 0).mean() < 1
    want = _cell_forward(cls, layer, x * in_mask[:, None, :], None)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell,k,reset_after", [("simple_rnn", 1, True), ("lstm", 4, True),
                                                 ("gru", 3, True), ("gru", 3, False)])
def test_per_gate_input_masks_are_the_cell_on_a_masked_copy_of_x_per_gate(cell, k, reset_after):
    """An independent form of the per-gate input masks: the unmasked twin on x_exp, the k masked
    copies of x side by side [N, T, k*F], with a block-diagonal kernel [k*F, k*U] (W_g in block
    (g, g)) computes the same states; its kernel gradient's diagonal blocks are dkernel and its
    dx_exp, each block times its mask and summed, is dx."""
    rng = np.random.default_rng(5)
    n, t, f, u = 3, 4, 2, 3
    x = rng.normal(size=(n, t, f))
    W, Rk = rng.normal(size=(f, k * u)) * 0.5, rng.normal(size=(u, k * u)) * 0.5
    b = rng.normal(size=(2, 3 * u) if cell == "gru" and reset_after else (k * u,)) * 0.3
    h0, c0 = rng.normal(size=(n, u)) * 0.5, rng.normal(size=(n, u)) * 0.5
    xmask = (rng.random((n, k * f)) > 0.4) / 0.6
    rmask = (rng.random((n, k * u)) > 0.4) / 0.6
    dy = rng.normal(size=(n, t, u))
    x_exp = np.concatenate([x * xmask[:, None, g * f:(g + 1) * f] for g in range(k)], axis=2)
    W_blk = np.zeros((k * f, k * u))
    for g in range(k):
        W_blk[g * f:(g + 1) * f, g * u:(g + 1) * u] = W[:, g * u:(g + 1) * u]
    common = dict(Rk=Rk, b=b, h0=h0, c0=c0, dy=dy, reverse=False, sequences=True,
                  reset_after=reset_after, rmask=rmask)
    loss, (dx, dW, *rest) = _twin_loss_and_grads(cell, x=x, W=W, xmask=xmask, **common)
    loss_exp, (dx_exp, dW_blk, *rest_exp) = _twin_loss_and_grads(cell, x=x_exp, W=W_blk, **common)
    assert loss == pytest.approx(loss_exp, rel=1e-12)
    for g in range(k):
        np.testing.assert_allclose(dW[:, g * u:(g + 1) * u],
                                   dW_blk[g * f:(g + 1) * f, g * u:(g + 1) * u], rtol=1e-12,
                                   atol=1e-12)
    want_dx = sum(dx_exp[:, :, g * f:(g + 1) * f] * xmask[:, None, g * f:(g + 1) * f]
                  for g in range(k))
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)
    for got, want in zip(rest, rest_exp):
        if got is not None:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell,k,reset_after", [("simple_rnn", 1, True), ("lstm", 4, True),
                                                 ("gru", 3, True), ("gru", 3, False)])
@pytest.mark.parametrize("reverse,input_masks", [(False, False), (True, False), (False, True),
                                                 (True, True)])
def test_native_kernels_with_a_recurrent_mask_match_the_twins(cell, k, reset_after, reverse,
                                                              input_masks):
    """input_masks: with per-gate input dropout masks too."""
    from fastnn import native
    rng = np.random.default_rng(4)
    n, t, f, u = 7, 5, 3, 6
    x = rng.normal(size=(n, t, f))
    W, Rk = rng.normal(size=(f, k * u)) * 0.4, rng.normal(size=(u, k * u)) * 0.4
    b = rng.normal(size=(2, 3 * u) if cell == "gru" and reset_after else (k * u,)) * 0.3
    h0 = rng.normal(size=(n, u)) * 0.5
    rmask = (rng.random((n, k * u)) > 0.3) / 0.7
    xmask = (rng.random((n, k * f)) > 0.3) / 0.7 if input_masks else None
    dy = rng.normal(size=(n, t, u))
    outs = []
    for impl in (R, native.kernels):
        if cell == "simple_rnn":
            z, hseq = np.empty((n, t, u)), np.empty((n, t, u))
            impl.simple_rnn_forward(x, W, Rk, b, h0, "tanh", 0.0, reverse, z=z, hseq=hseq,
                                    rmask=rmask, xmask=xmask)
            grads = impl.simple_rnn_backward(
                dy, x, W, Rk, h0, z, hseq, "tanh", 0.0, reverse, True, dx=np.empty_like(x),
                dkernel=np.empty_like(W), drecurrent=np.empty_like(Rk), dbias=np.empty_like(b),
                dh0=np.empty_like(h0), dz=np.empty((n, t, u)), hprev=np.empty((n, t, u)),
                rmask=rmask, xmask=xmask)
        elif cell == "lstm":
            c0 = h0[::-1].copy()
            cache = dict(z=np.empty((n, t, 4 * u)), gates=np.empty((n, t, 4 * u)),
                         cseq=np.empty((n, t, u)), tc=np.empty((n, t, u)))
            hseq = np.empty((n, t, u))
            impl.lstm_forward(x, W, Rk, b, h0, c0, reverse=reverse, hseq=hseq, rmask=rmask,
                              xmask=xmask, **cache)
            grads = impl.lstm_backward(
                dy, x, W, Rk, h0, c0, cache["z"], cache["gates"], cache["cseq"], cache["tc"], hseq,
                reverse=reverse, sequences=True, dx=np.empty_like(x), dkernel=np.empty_like(W),
                drecurrent=np.empty_like(Rk), dbias=np.empty_like(b), dh0=np.empty_like(h0),
                dc0=np.empty_like(h0), dz=np.empty((n, t, 4 * u)), hprev=np.empty((n, t, u)),
                rmask=rmask, xmask=xmask)
        else:
            cache = dict(zx=np.empty((n, t, 3 * u)), zr=np.empty((n, t, 3 * u)),
                         gates=np.empty((n, t, 3 * u)))
            hseq = np.empty((n, t, u))
            impl.gru_forward(x, W, Rk, b, h0, reset_after=reset_after, reverse=reverse, hseq=hseq,
                             rmask=rmask, xmask=xmask, **cache)
            grads = impl.gru_backward(
                dy, x, W, Rk, h0, cache["zx"], cache["zr"], cache["gates"], hseq,
                reset_after=reset_after, reverse=reverse, sequences=True, dx=np.empty_like(x),
                dkernel=np.empty_like(W), drecurrent=np.empty_like(Rk), dbias=np.empty_like(b),
                dh0=np.empty_like(h0), dax=np.empty((n, t, 3 * u)), dar=np.empty((n, t, 3 * u)),
                hprev=np.empty((n, t, u)), work=np.empty((n, u)), rmask=rmask,
                xmask=xmask)
        outs.append([np.array(hseq)] + [np.array(g) for g in grads if g is not None])
    for want, got in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# -- both backends, the one-call step, gradients, files ------------------------------------------
def _model(cls, backend, seed=3, **kwargs):
    fastnn.utils.set_random_seed(seed)
    with fastnn.backend_scope(backend):
        model = fastnn.Sequential([layers.Input(shape=(5, 3)), cls(6, return_sequences=True, **kwargs),
                                   cls(4, go_backwards=True), layers.Dense(3, activation="softmax")])
        model.compile(optimizer=fastnn.optimizers.Adam(0.01, clipnorm=1.0),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("cls,kwargs", [
    (layers.SimpleRNN, {}), (layers.LSTM, {}), (layers.GRU, {}), (layers.GRU, {"reset_after": False}),
    (layers.SimpleRNN, {"recurrent_dropout": 0.3}), (layers.LSTM, {"recurrent_dropout": 0.3, "dropout": 0.2}),
    (layers.GRU, {"recurrent_dropout": 0.3}), (layers.GRU, {"reset_after": False, "recurrent_dropout": 0.3}),
    (layers.GRU, {"recurrent_dropout": 0.3, "dropout": 0.2})])
def test_backends_train_alike_and_native_runs_one_recorded_step(cls, kwargs):
    x, y = _seq(n=40), np.arange(40) % 3
    histories = {}
    for backend in ("numpy", "native"):
        model = _model(cls, backend, **kwargs)
        with fastnn.backend_scope(backend):
            histories[backend] = model.fit(x, y, batch_size=8, epochs=3, verbose=0).history
            if backend == "native":
                assert model._programs["train"][1] is not None  # not the eager fallback
                predicted = model.predict(x)
                assert model._programs["predict"][1] is not None
            else:
                predicted_ref = model.predict(x)
    np.testing.assert_allclose(histories["native"]["loss"], histories["numpy"]["loss"], rtol=1e-4)
    np.testing.assert_allclose(predicted, predicted_ref, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "native"])
@pytest.mark.parametrize("cls,kwargs", [(layers.SimpleRNN, {}), (layers.LSTM, {}), (layers.GRU, {}),
                                        (layers.GRU, {"reset_after": False})])
def test_gradient_check_of_stacked_recurrent_models(backend, cls, kwargs):
    fastnn.utils.set_random_seed(0)
    with fastnn.backend_scope(backend):
        fastnn.backend.set_floatx("float64")
        try:
            model = fastnn.Sequential([
                layers.Input(shape=(4, 3)), cls(5, return_sequences=True, **kwargs),
                cls(3, kernel_regularizer=fastnn.regularizers.L2(0.01), **kwargs),
                layers.Dense(2, activation="softmax")])
            model.compile(optimizer="sgd", loss="categorical_crossentropy")
            x = _seq(n=4, t=4, f=3, dtype=np.float64)
            y = np.eye(2)[[0, 1, 1, 0]]
            errors = gradient_check(model, x, y)
        finally:
            fastnn.backend.set_floatx("float32")
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_sequence_outputs_losses_and_metrics_per_step(backend):
    """(N, T, C) outputs: the loss is the mean over samples and steps of each step's loss."""
    fastnn.utils.set_random_seed(1)
    with fastnn.backend_scope(backend):
        model = fastnn.Sequential([layers.Input(shape=(5, 3)), layers.GRU(6, return_sequences=True),
                                   layers.Dense(4, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        x = _seq(n=8)
        y = np.random.default_rng(0).integers(0, 4, size=(8, 5))
        probs = model.predict(x)
        assert probs.shape == (8, 5, 4)
        loss, acc = model.evaluate(x, y)
        picked = np.take_along_axis(probs, y[..., None], axis=-1)[..., 0]
        assert loss == pytest.approx(-np.log(picked).mean(), rel=1e-5)
        assert acc == pytest.approx((probs.argmax(-1) == y).mean())
        model.fit(x, y, epochs=2, verbose=0)
        with pytest.raises(ValueError, match=r"targets must start with shape \(8, 5\)"):
            model.fit(x, y[:, :4], verbose=0)
        mse = fastnn.Sequential([layers.Input(shape=(5, 3)), layers.SimpleRNN(2, return_sequences=True)])
        mse.compile(optimizer="sgd", loss="mse")
        target = np.ones((8, 5, 2))
        assert mse.evaluate(x, target) == pytest.approx(((mse.predict(x) - 1.0) ** 2).mean(), rel=1e-5)


@pytest.mark.parametrize("cls", CELLS)
def test_save_and_load_round_trip(tmp_path, cls):
    model = _model(cls, "native")
    x, y = _seq(n=16), np.arange(16) % 3
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "rnn.fastnn"
    model.save(path)
    again = fastnn.models.load_model(path)
    assert [type(l) for l in again.layers] == [type(l) for l in model.layers]
    assert again.layers[1].go_backwards and again.layers[0].return_sequences
    assert np.array_equal(again.predict(x), model.predict(x))
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    again.fit(x, y, epochs=1, verbose=0, shuffle=False)  # the optimizer state travelled too
    assert np.array_equal(again.predict(x), model.predict(x))


def test_results_do_not_depend_on_the_thread_count():
    script = textwrap.dedent("""
        import sys, numpy as np, fastnn
        from fastnn import layers
        fastnn.set_num_threads(int(sys.argv[1]))
        fastnn.utils.set_random_seed(0)
        x = np.random.default_rng(0).normal(size=(96, 12, 16)).astype(np.float32)
        y = np.arange(96) % 5
        m = fastnn.Sequential([layers.Input(shape=(12, 16)),
                               layers.LSTM(48, return_sequences=True, recurrent_dropout=0.2, seed=3),
                               layers.GRU(40), layers.Dense(5, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        m.fit(x, y, batch_size=48, epochs=2, verbose=0)
        print(np.concatenate([w.ravel() for w in m.get_weights()]).tobytes().hex()[:4000],
              m.predict(x).tobytes().hex()[-4000:])
    """)
    runs = [subprocess.run([sys.executable, "-c", script, str(n)], capture_output=True, text=True,
                           check=True, cwd="/").stdout for n in (1, 2)]
    assert runs[0] == runs[1] and runs[0]


def test_embedding_lstm_learns_an_order_dependent_rule():
    """Label 1 when token 1 comes before token 2 in the sequence: the same tokens, in another
    order, give the other label, so no bag-of-words model can solve it."""
    rng = np.random.default_rng(0)
    n, t = 600, 8
    x = rng.integers(3, 10, size=(n, t))
    for row in x:
        i, j = rng.choice(t, size=2, replace=False)
        row[i], row[j] = 1, 2
    y = (np.argmax(x == 1, axis=1) < np.argmax(x == 2, axis=1)).astype(np.int64)
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([layers.Input(shape=(t,)), layers.Embedding(10, 8), layers.LSTM(16),
                               layers.Dense(2, activation="softmax")])
    model.compile(optimizer=fastnn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:500], y[:500], batch_size=32, epochs=15, verbose=0)
    swapped = np.where(x[500:] == 1, 2, np.where(x[500:] == 2, 1, x[500:]))
    acc = model.evaluate(x[500:], y[500:])[1]
    acc_swapped = (model.predict(swapped).argmax(1) == 1 - y[500:]).mean()
    assert acc > 0.9 and acc_swapped > 0.9, (acc, acc_swapped)


def test_course_notes_keras_recurrent_block_runs_with_imports_changed():
    # notes 003 section 9: the TensorFlow block, with `tensorflow.keras` -> fastnn
    from fastnn.layers import GRU, LSTM, SimpleRNN  # noqa: F401
    from fastnn.models import Sequential
    input_size, hidden_size, sequence_len, batch_size = 10, 20, 5, 3
    model = Sequential([
        SimpleRNN(hidden_size, return_sequences=True, input_shape=(sequence_len, input_size)),
        LSTM(hidden_size, return_sequences=True),
        GRU(hidden_size, return_sequences=True),
    ])
    inputs = np.random.default_rng(0).normal(size=(batch_size, sequence_len, input_size))
    outputs = model(inputs)
    assert outputs.shape == (batch_size, sequence_len, hidden_size)


# -- Keras itself, through a fixture made by real Keras ---------------------------------------------
def _keras_compare_module():
    """bench/keras_recurrent_compare.py, the script that made tests/fixtures/keras_recurrent.npz
    (Keras 3 on JAX) and that compares fastnn with it."""
    import importlib.util
    import pathlib
    root = pathlib.Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("keras_recurrent_compare",
                                                  root / "bench" / "keras_recurrent_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, root / "tests" / "fixtures" / "keras_recurrent.npz"


@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_outputs_and_weight_gradients_equal_keras_on_keras_weights(backend):
    """Every case of the fixture (each cell, reset_after both ways, sequences or last state,
    go_backwards, initial_state with return_state, stacked layers, Dense per step,
    Embedding -> LSTM -> Dense, the course notes' block): outputs, loss and the gradient of every
    weight agree with Keras's to float32 rounding."""
    module, fixture = _keras_compare_module()
    with fastnn.backend_scope(backend):
        errors = module.compare(fixture, verbose=False)
    assert len(errors) == len(module.CASES) and max(errors.values()) < 1e-5


def test_keras_comparison_fails_on_a_wrong_weight(tmp_path):
    """The comparison can fail: one recurrent-kernel entry of one case changed by 1%."""
    module, fixture = _keras_compare_module()
    data = dict(np.load(fixture))
    data["lstm_seq/w1"] = data["lstm_seq/w1"].copy()
    data["lstm_seq/w1"][0, 5] *= 1.01  # the forget gate's recurrent weight of unit 1
    np.savez(tmp_path / "changed.npz", **data)
    with pytest.raises(AssertionError, match="lstm_seq"):
        module.compare(tmp_path / "changed.npz", verbose=False)


# -- the final states' own gradients (return_state in a graph) -----------------------------------
def _backward_call(kernels, cell, dy, x, W, Rk, b, h0, c0, reverse, sequences, dh_last, dc_last):
    """Forward then backward of one cell on ``kernels``; the outputs of the backward as arrays."""
    n, t, _ = x.shape
    u = Rk.shape[0]
    k = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    hseq = np.empty((n, t, u))
    common = dict(dx=np.empty_like(x), dkernel=np.empty_like(W), drecurrent=np.empty_like(Rk),
                  dbias=np.empty_like(b), dh0=np.empty((n, u)), dh_last=dh_last)
    if cell == "simple_rnn":
        z = np.empty((n, t, u))
        kernels.simple_rnn_forward(x, W, Rk, b, h0, "tanh", 0.0, reverse, z=z, hseq=hseq)
        kernels.simple_rnn_backward(dy, x, W, Rk, h0, z, hseq, "tanh", 0.0, reverse, sequences,
                                    dz=np.empty_like(z), hprev=np.empty_like(hseq), **common)
        return list(common.values())[:5]
    if cell == "lstm":
        cache = [np.empty((n, t, 4 * u)), np.empty((n, t, 4 * u)), np.empty((n, t, u)),
                 np.empty((n, t, u))]
        kernels.lstm_forward(x, W, Rk, b, h0, c0, reverse=reverse, z=cache[0], gates=cache[1],
                             cseq=cache[2], tc=cache[3], hseq=hseq)
        dc0 = np.empty((n, u))
        kernels.lstm_backward(dy, x, W, Rk, h0, c0, *cache, hseq, reverse=reverse,
                              sequences=sequences, dc0=dc0, dz=np.empty((n, t, 4 * u)),
                              hprev=np.empty_like(hseq), dc_last=dc_last, **common)
        return list(common.values())[:5] + [dc0]
    cache = [np.empty((n, t, k * u)) for _ in range(3)]
    kernels.gru_forward(x, W, Rk, b, h0, reverse=reverse, zx=cache[0], zr=cache[1], gates=cache[2],
                        hseq=hseq)
    kernels.gru_backward(dy, x, W, Rk, h0, *cache, hseq, reverse=reverse, sequences=sequences,
                         dax=np.empty_like(cache[0]), dar=np.empty_like(cache[0]),
                         hprev=np.empty_like(hseq), work=np.empty((n, u)), **common)
    return list(common.values())[:5]


@pytest.mark.parametrize("cell,k", [("simple_rnn", 1), ("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize("reverse,sequences", [(False, True), (True, False), (True, True)])
def test_backward_seeds_of_the_final_state(cell, k, reverse, sequences):
    """dh_last adds to the outputs' gradient at the last processing step (bit for bit the same as
    adding it into dy without sequences); dc_last starts the LSTM's cell gradient; dy=None means
    no gradient from the outputs; native equals the twin; a central difference of
    <h_T, dh_last> + <c_T, dc_last> agrees."""
    rng = np.random.default_rng(3)
    n, t, f, u = 3, 4, 2, 3
    x, W = rng.normal(size=(n, t, f)), rng.normal(size=(f, k * u)) * 0.5
    Rk = rng.normal(size=(u, k * u)) * 0.5
    b = rng.normal(size=(2, 3 * u) if cell == "gru" else (k * u,)) * 0.3
    h0, c0 = rng.normal(size=(n, u)) * 0.5, rng.normal(size=(n, u)) * 0.5
    dy = rng.normal(size=(n, t, u) if sequences else (n, u))
    dh_last, dc_last = rng.normal(size=(n, u)), rng.normal(size=(n, u))
    c_seed = dc_last if cell == "lstm" else None
    args = (x, W, Rk, b, h0, c0 if cell == "lstm" else None, reverse, sequences)
    from fastnn import native
    twin = _backward_call(R, cell, dy, *args, dh_last, c_seed)
    nat = _backward_call(native.kernels, cell, dy, *args, dh_last, c_seed)
    for a, b_ in zip(twin, nat):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-12)
    if not sequences:  # the seed on h is dy's own last-step term
        summed = _backward_call(native.kernels, cell, dy + dh_last, *args, None, c_seed)
        for a, b_ in zip(nat, summed):
            np.testing.assert_array_equal(a, b_)
    # only the final states' gradients (nobody reads the outputs)
    only = _backward_call(native.kernels, cell, None, *args, dh_last, c_seed)
    twin_only = _backward_call(R, cell, None, *args, dh_last, c_seed)
    for a, b_ in zip(only, twin_only):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-12)

    def objective(h0_):  # <h_T, dh_last> + <c_T, dc_last>
        seq = np.empty((n, t, u))
        if cell == "lstm":
            cseq = np.empty((n, t, u))
            R.lstm_forward(x, W, Rk, b, h0_, c0, reverse=reverse, cseq=cseq, hseq=seq)
            return (seq[:, -1] * dh_last).sum() + (cseq[:, 0 if reverse else -1] * dc_last).sum()
        fwd = R.simple_rnn_forward if cell == "simple_rnn" else R.gru_forward
        fwd(x, W, Rk, b, h0_, reverse=reverse, hseq=seq)
        return (seq[:, -1] * dh_last).sum()
    numeric = np.zeros_like(h0)
    for i in np.ndindex(h0.shape):
        up, down = h0.copy(), h0.copy()
        up[i] += 1e-6
        down[i] -= 1e-6
        numeric[i] = (objective(up) - objective(down)) / 2e-6
    np.testing.assert_allclose(only[4], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("cls, act, loss", [(layers.LSTM, "sigmoid", "binary_crossentropy"),
                                            (layers.GRU, "sigmoid", "binary_crossentropy"),
                                            (layers.SimpleRNN, "sigmoid", "binary_crossentropy")])
def test_a_recurrent_last_layer_is_not_trained_through_logits(backend, cls, act, loss):
    # a cell's activation makes its state: the loss must see the layer's output, never the
    # values before the activation (the fused logits path of Dense and Activation)
    fastnn.utils.set_random_seed(3)
    units = 2
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5, 2)).astype(np.float32)
    y = (rng.random((16, units)) > 0.5).astype(np.float32)
    with fastnn.backend_scope(backend):
        model = fastnn.Sequential([layers.Input(shape=(5, 2)), cls(units, activation=act)])
        model.compile("sgd", loss)
        p = model.predict(x).astype(np.float64)
        expected = fastnn.losses.get(loss)(y, p)
        np.testing.assert_allclose(model.evaluate(x, y, verbose=0), expected, rtol=1e-5)
        before = [w.copy() for w in model.get_weights()]
        np.testing.assert_allclose(model.train_on_batch(x, y), expected, rtol=1e-5)
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
