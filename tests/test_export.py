"""Exports: ONNX files run in ONNX Runtime, and PyTorch modules, give the model's own outputs."""
import numpy as np
import pytest

import fastnn
from fastnn import export, layers as L
from fastnn.activations import NAMES

TOL = dict(rtol=1e-5, atol=1e-5)


def _data(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _randomize(model, seed=1):
    """Non-trivial weights everywhere (biases, normalization statistics, PReLU slopes)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape) * 0.5 for w in model.get_weights()])
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.moving_variance[...] = rng.uniform(0.5, 2.0, layer.moving_variance.shape)
        if isinstance(layer, L.Normalization):
            layer.variance[...] = rng.uniform(0.5, 2.0, layer.variance.shape)
    return model


def _ready(layers_, input_shape, dtype=None):
    before = fastnn.floatx()
    fastnn.set_floatx(np.dtype(dtype or before).name)
    try:
        model = fastnn.Sequential(layers_)
        model.build((None,) + tuple(input_shape))
    finally:
        fastnn.set_floatx(before)
    assert model.get_weights()[0].dtype == np.dtype(dtype or before)
    return _randomize(model)


# -------------------------------------------------------------------------------------- ONNX

def _onnx():
    return (pytest.importorskip("onnx", reason="ONNX export tests need the onnx package (extra 'onnx')"),
            pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (extra 'onnx')"))


def _run_onnx(model, x, tmp_path=None):
    onnx, ort = _onnx()
    if tmp_path is None:
        proto = export.to_onnx(model)
    else:
        path = tmp_path / "m.onnx"
        model.export(str(path), format="onnx")
        proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


@pytest.mark.parametrize("activation", NAMES)
def test_dense_each_activation_matches_onnxruntime(activation):
    model = _ready([L.Dense(7, activation=activation, input_dim=5)], (5,))
    x = _data((9, 5)) * 2
    np.testing.assert_allclose(_run_onnx(model, x), model.predict(x), **TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_stack_matches_onnxruntime_any_batch(dtype, tmp_path):
    model = _ready([L.Flatten(input_shape=(2, 3)), L.Dense(8, activation="relu"), L.BatchNormalization(),
                    L.Dropout(0.5), L.Dense(6, activation="tanh"), L.LayerNormalization(),
                    L.GaussianNoise(0.3), L.PReLU(), L.LeakyReLU(0.2),
                    # ONNX Runtime has no float64 Elu (the file is valid; the runtime lacks it)
                    L.ELU(0.7) if dtype == np.float32 else L.Identity(),
                    L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2), L.Rescaling(2.0, 0.5),
                    L.Normalization(mean=[0.1] * 6, variance=[2.0] * 6), L.GaussianDropout(0.2),
                    L.AlphaDropout(0.1), L.ActivityRegularization(0.1), L.Identity(),
                    L.Dense(4), L.Softmax()], (2, 3), dtype=dtype)
    for n in (1, 13):  # the batch axis is dynamic
        x = _data((n, 2, 3), seed=n, dtype=dtype)
        got = _run_onnx(model, x, tmp_path)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, model.predict(x), **TOL)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU", "GRU_reset_before"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_recurrent_matches_onnxruntime(kind, return_sequences, go_backwards):
    cls = getattr(L, kind.split("_")[0])
    kwargs = {"reset_after": False} if kind.endswith("before") else {}
    model = _ready([cls(5, return_sequences=return_sequences, go_backwards=go_backwards, **kwargs),
                    L.Dense(2)], (6, 3))
    x = _data((4, 6, 3))
    np.testing.assert_allclose(_run_onnx(model, x), model.predict(x), **TOL)


def test_recurrent_cell_activations_and_stacking():
    model = _ready([L.LSTM(4, activation="relu", recurrent_activation="hard_sigmoid",
                           return_sequences=True),
                    L.GRU(3, activation="elu", return_sequences=True),
                    L.SimpleRNN(2, activation="leaky_relu")], (5, 2))
    x = _data((3, 5, 2))
    np.testing.assert_allclose(_run_onnx(model, x), model.predict(x), **TOL)


def test_embedding_takes_int64_token_ids():
    model = _ready([L.Embedding(11, 4, input_shape=(6,)), L.GRU(3), L.Dense(2, activation="sigmoid")],
                   (6,))
    tokens = np.random.default_rng(3).integers(0, 11, (5, 6))
    got = _run_onnx(model, tokens.astype(np.int64))
    np.testing.assert_allclose(got, model.predict(tokens.astype(np.float32)), **TOL)


def test_a_layer_without_export_is_named():
    _onnx()
    class Doubler(L.Layer):
        def forward(self, x, training=False, logits=False):
            return x * 2

    model = _ready([L.Dense(3, input_dim=2), Doubler(name="my_doubler")], (2,))
    with pytest.raises(ValueError, match="my_doubler.*Doubler.*no ONNX export"):
        export.to_onnx(model)


def test_cell_activation_without_onnx_operator_is_named():
    _onnx()
    model = _ready([L.SimpleRNN(3, activation="gelu", name="rnn_g")], (4, 2))
    with pytest.raises(ValueError, match="rnn_g.*'gelu'"):
        export.to_onnx(model)


def test_bad_arguments():
    _onnx()
    model = _ready([L.Dense(3, input_dim=2)], (2,))
    with pytest.raises(ValueError, match="opset must be an integer from 17"):
        export.to_onnx(model, opset=11)
    with pytest.raises(ValueError, match="format='onnx'"):
        model.export("m.pb", format="tf_saved_model")
    with pytest.raises(ValueError, match="not built"):
        export.to_onnx(fastnn.Sequential([L.Dense(3)]))


def test_opset_is_recorded():
    model = _ready([L.Dense(3, input_dim=2, activation="softmax")], (2,))
    onnx, ort = _onnx()
    proto = export.to_onnx(model, opset=18)
    assert [o.version for o in proto.opset_import if o.domain == ""] == [18]
    x = _data((4, 2))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x), **TOL)


# ----------------------------------------------------------------------------------- PyTorch

def _torch():
    return pytest.importorskip("torch", reason="PyTorch export tests need torch (not in the test "
                               "extra: install the build for your machine from pytorch.org)")


def _run_torch(module, x):
    torch = _torch()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("activation", NAMES)
def test_to_torch_each_activation(activation):
    _torch()
    model = _ready([L.Dense(7, activation=activation, input_dim=5)], (5,))
    x = _data((9, 5)) * 2
    module = model.to_torch()
    assert not module.training
    np.testing.assert_allclose(_run_torch(module, x), model.predict(x), **TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_torch_layer_stack(dtype):
    _torch()
    model = _ready([L.Flatten(input_shape=(2, 3)), L.Dense(8, activation="relu"), L.BatchNormalization(),
                    L.Dropout(0.5), L.Dense(6, activation="tanh"), L.LayerNormalization(),
                    L.GaussianNoise(0.3), L.PReLU(), L.LeakyReLU(0.2), L.ELU(0.7),
                    L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2), L.Rescaling(2.0, 0.5),
                    L.Normalization(mean=[0.1] * 6, variance=[2.0] * 6), L.Identity(),
                    L.Dense(4), L.Softmax()], (2, 3), dtype=dtype)
    x = _data((13, 2, 3), dtype=dtype)
    got = _run_torch(model.to_torch(), x)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, model.predict(x), **TOL)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_to_torch_recurrent(kind, return_sequences, go_backwards):
    _torch()
    model = _ready([getattr(L, kind)(5, return_sequences=return_sequences, go_backwards=go_backwards),
                    L.LayerNormalization(), L.BatchNormalization(), L.PReLU(), L.Dense(2)], (6, 3))
    x = _data((4, 6, 3))
    np.testing.assert_allclose(_run_torch(model.to_torch(), x), model.predict(x), **TOL)


def test_to_torch_embedding_and_pickle():
    torch = _torch()
    import io
    model = _ready([L.Embedding(11, 4, input_shape=(6,)), L.LSTM(3), L.Dense(2)], (6,))
    tokens = np.random.default_rng(3).integers(0, 11, (5, 6))
    module = model.to_torch()
    buf = io.BytesIO()
    torch.save(module, buf)
    buf.seek(0)
    again = torch.load(buf, weights_only=False)
    with torch.no_grad():
        got = again(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(got, model.predict(tokens.astype(np.float32)), **TOL)


def test_to_torch_refuses_what_torch_lacks():
    _torch()
    with pytest.raises(ValueError, match="gru_b.*reset_after=False"):
        _ready([L.GRU(3, reset_after=False, name="gru_b")], (4, 2)).to_torch()
    with pytest.raises(ValueError, match="lstm_r.*'relu'"):
        _ready([L.LSTM(3, activation="relu", name="lstm_r")], (4, 2)).to_torch()


def test_from_torch_round_trip():
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(5, 8), nn.GELU(), nn.BatchNorm1d(8), nn.Dropout(0.3),
                        nn.Linear(8, 6), nn.LayerNorm(6), nn.PReLU(), nn.Linear(6, 4), nn.Softmax(dim=-1))
    with torch.no_grad():  # non-trivial running statistics
        seq[2].running_mean.uniform_(-1, 1)
        seq[2].running_var.uniform_(0.5, 2)
    seq.eval()
    model = fastnn.from_torch(seq)
    assert [type(l).__name__ for l in model.layers] == [
        "Dense", "BatchNormalization", "Dropout", "Dense", "LayerNormalization", "PReLU", "Dense"]
    x = _data((7, 5))
    np.testing.assert_allclose(model.predict(x), _run_torch(seq, x), **TOL)
    np.testing.assert_allclose(_run_torch(model.to_torch(), x), _run_torch(seq, x), **TOL)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_from_torch_recurrent(kind):
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(1)
    rnn = getattr(nn, kind)(3, 5, batch_first=True)
    seq = nn.Sequential(rnn)
    model = fastnn.from_torch(seq, input_shape=(6, 3))
    x = _data((4, 6, 3))
    with torch.no_grad():
        want = rnn(torch.from_numpy(x))[0].numpy()  # a bare module's first output: every state
    np.testing.assert_allclose(model.predict(x), want, **TOL)
    # and back, through the wrapper that keeps return_sequences / go_backwards
    original = _ready([getattr(L, "SimpleRNN" if kind == "RNN" else kind)(4, go_backwards=True)], (6, 3))
    back = fastnn.from_torch(original.to_torch(), input_shape=(6, 3))
    assert not back.layers[0].return_sequences and back.layers[0].go_backwards
    np.testing.assert_allclose(back.predict(x), original.predict(x), **TOL)


def test_from_torch_refuses_unknown_modules():
    torch = _torch()
    nn = torch.nn
    with pytest.raises(ValueError, match=r"module 1 \(Conv1d\) has no fastnn counterpart"):
        fastnn.from_torch(nn.Sequential(nn.Linear(3, 4), nn.Conv1d(1, 1, 1)))
    with pytest.raises(ValueError, match="bidirectional"):
        fastnn.from_torch(nn.Sequential(nn.LSTM(3, 4, batch_first=True, bidirectional=True)),
                          input_shape=(5, 3))
    with pytest.raises(ValueError, match="input_shape"):
        fastnn.from_torch(nn.Sequential(nn.GRU(3, 4, batch_first=True)))
    with pytest.raises(TypeError, match="torch.nn.Sequential"):
        fastnn.from_torch(nn.Linear(3, 4))


# ------------------------------------------------------------------- functional graphs to ONNX

def _functional(dtype=None):
    """Two inputs, two outputs, every merge layer and a Reshape."""
    before = fastnn.floatx()
    fastnn.set_floatx(np.dtype(dtype or before).name)
    try:
        a, b = fastnn.Input((6,), name="a"), fastnn.Input((6,), name="b")
        ha = L.Dense(8, activation="tanh")(a)
        hb = L.Dense(8, activation="relu")(b)
        merged = [L.Add()([ha, hb]), L.Subtract()([ha, hb]), L.Multiply()([ha, hb]),
                  L.Average()([ha, hb, ha]), L.Maximum()([ha, hb]), L.Minimum()([ha, hb])]
        cat = L.Concatenate()(merged)                       # (48,)
        grid = L.Reshape((6, -1))(cat)                      # (6, 8)
        # ONNX Runtime's LSTM computes float32 only
        seq = L.LSTM(5)(grid) if np.dtype(fastnn.floatx()) == np.float32 else L.Dense(5)(grid)
        seq = seq if len(seq.shape) == 2 else L.Flatten()(seq)
        first = L.Dense(3, activation="softmax")(seq)
        second = L.Dense(2)(L.Flatten()(grid))
        model = fastnn.Model([a, b], [first, second])
    finally:
        fastnn.set_floatx(before)
    return _randomize(model)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_onnx_functional_graph_several_inputs_and_outputs(dtype, tmp_path):
    onnx, ort = _onnx()
    model = _functional(dtype)
    path = tmp_path / "graph.onnx"
    model.export(str(path), format="onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1"]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 7):  # the batch axis is dynamic
        xa, xb = _data((batch, 6), seed=batch, dtype=dtype), _data((batch, 6), seed=batch + 1, dtype=dtype)
        want = model.predict([xa, xb])
        got = session.run(["output_0", "output_1"], {"a": xa, "b": xb})
        assert got[0].shape == (batch, 3) and got[1].shape == (batch, 2)
        np.testing.assert_allclose(got[0], want[0], **TOL)
        np.testing.assert_allclose(got[1], want[1], **TOL)


def test_onnx_functional_single_output_and_shared_layer():
    onnx, ort = _onnx()
    x = fastnn.Input((4,), name="x")
    shared = L.Dense(4, activation="sigmoid")
    y = L.Add()([shared(x), shared(L.Dense(4)(x))])  # one layer called twice
    model = _randomize(fastnn.Model(x, L.Dense(1)(y)))
    session = ort.InferenceSession(export.to_onnx(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    data = _data((5, 4))
    np.testing.assert_allclose(session.run(["output"], {"x": data})[0], model.predict(data), **TOL)


def test_functional_exports_refuse_by_name():
    _onnx()
    x = fastnn.Input((3,))
    model = fastnn.Model(x, L.Dense(2)(x))
    with pytest.raises(ValueError, match="functional graph"):
        pytest.importorskip("torch", reason="the PyTorch export needs torch")
        model.to_torch()
