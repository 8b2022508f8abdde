"""The functional API (fastnn/functional.py): keras.Input, layers called on tensors, Model(inputs,
outputs), merge layers, shared layers, several inputs and outputs, both backends."""
import numpy as np
import pytest

import fastnn
import fastnn.keras as keras
from fastnn import layers
from fastnn.functional import Functional


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    xa, xb = rng.normal(size=(n, 4)), rng.normal(size=(n, 3))
    y = (xa[:, :1] * 0.7 - xb[:, 1:2] + 0.3 * xa[:, 1:2] * xb[:, :1]).astype(np.float32)
    return xa.astype(np.float32), xb.astype(np.float32), y


def _two_input_skip(dtype=None):
    a = keras.Input(shape=(4,), name="a", dtype=dtype)
    b = keras.Input(shape=(3,), name="b", dtype=dtype)
    h = layers.Dense(16, activation="tanh", name="ha")(a)
    g = layers.Dense(16, activation="tanh", name="hb")(b)
    s = layers.Add(name="add")([h, g])
    z = layers.Dense(16, activation="tanh", name="mid")(s)
    skip = layers.Add(name="skip")([z, s])        # s is read twice: a skip connection
    out = layers.Dense(1, name="out")(skip)
    return keras.Model(inputs=[a, b], outputs=out)


def test_keras_model_with_inputs_and_outputs_is_functional():
    model = _two_input_skip()
    assert isinstance(model, Functional) and isinstance(model, fastnn.Model)
    assert keras.models.Model is fastnn.Model is keras.Model
    assert [l.name for l in model.layers] == ["a", "b", "ha", "hb", "add", "mid", "skip", "out"]
    assert model.get_layer("mid") is model.layers[5]
    assert model.input_shape == [(None, 4), (None, 3)] and model.output_shape == (None, 1)


@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_two_input_model_with_a_skip_connection_learns(backend):
    fastnn.utils.set_random_seed(1)
    xa, xb, y = _data(256)
    with fastnn.backend_scope(backend):
        model = _two_input_skip()
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        before = model.evaluate([xa, xb], y)
        model.fit([xa, xb], y, epochs=40, batch_size=32, verbose=0)
        after = model.evaluate({"a": xa, "b": xb}, y)
    assert after < 0.2 * before


def test_both_backends_agree_and_the_native_step_is_one_recorded_program():
    xa, xb, y = _data()
    fastnn.utils.set_random_seed(2)
    ref = _two_input_skip()
    results = {}
    for backend in ("numpy", "native"):
        with fastnn.backend_scope(backend):
            model = fastnn.models.clone_model(ref)
            model.set_weights(ref.get_weights())
            model.compile(optimizer="adam", loss="mse")
            hist = model.fit([xa, xb], y, epochs=3, batch_size=16, verbose=0, shuffle=False)
            if backend == "native":
                assert model._programs["train"][1] is not None  # the one-call native step
            results[backend] = (hist.history["loss"], model.get_weights(), model.predict([xa, xb]))
    np.testing.assert_allclose(results["numpy"][0], results["native"][0], rtol=1e-5)
    for w_np, w_nat in zip(results["numpy"][1], results["native"][1]):
        np.testing.assert_allclose(w_np, w_nat, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(results["numpy"][2], results["native"][2], rtol=1e-4, atol=1e-5)


def test_a_functional_chain_equals_the_same_sequential_bitwise_on_native():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(96, 5)).astype(np.float32), rng.integers(0, 3, 96)
    seq = fastnn.Sequential([layers.Input((5,)), layers.Dense(12, activation="relu"),
                             layers.Dropout(0.2, seed=4), layers.Dense(3, activation="softmax")])
    inp = keras.Input(shape=(5,))
    h = layers.Dense(12, activation="relu")(inp)
    h = layers.Dropout(0.2, seed=4)(h)
    func = keras.Model(inp, layers.Dense(3, activation="softmax")(h))
    func.set_weights(seq.get_weights())
    with fastnn.backend_scope("native"):
        out = []
        for model in (seq, func):
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False)
            out.append((hist.history, model.get_weights(), model.predict(x)))
    assert out[0][0] == out[1][0]
    for a, b in zip(out[0][1], out[1][1]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out[0][2], out[1][2])


def test_gradient_check_through_merges_and_a_shared_layer():
    before = fastnn.floatx()
    fastnn.set_floatx("float64")
    try:
        a = keras.Input(shape=(3,), name="a")
        b = keras.Input(shape=(3,), name="b")
        shared = layers.Dense(4, activation="tanh", name="shared")
        ha, hb = shared(a), shared(b)  # one layer, two calls: its gradient is the sum of both
        merged = [layer([ha, hb]) for layer in (layers.Add(), layers.Subtract(), layers.Multiply(),
                                                  layers.Average(), layers.Maximum(), layers.Minimum())]
        c = layers.Concatenate()(merged + [layers.Reshape((4,))(layers.Reshape((2, 2))(ha))])
        r = layers.Reshape((7, 4))(c)
        r = layers.Reshape((28,))(r)
        out = layers.Dense(2, name="out")(r)
        model = keras.Model([a, b], out)
        model.compile(loss="mse")
        rng = np.random.default_rng(5)
        xa, xb, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
        for backend in ("numpy", "native"):
            with fastnn.backend_scope(backend):
                errors = fastnn.utils.gradient_check(model, [xa, xb], y)
            assert set(errors) == {"shared", "out"}
            assert max(errors.values()) < 1e-6, (backend, errors)
    finally:
        fastnn.set_floatx(before)


def test_multi_output_loss_weights_give_the_weighted_total_and_keras_names():
    xa, xb, y = _data()
    labels = (y[:, 0] > 0).astype(np.int64)
    a = keras.Input(shape=(4,), name="a")
    b = keras.Input(shape=(3,), name="b")
    h = layers.Concatenate()([layers.Dense(8, activation="relu")(a), b])
    reg = layers.Dense(1, name="reg")(h)
    cls = layers.Dense(2, activation="softmax", name="cls")(h)
    model = keras.Model({"a": a, "b": b}, {"reg": reg, "cls": cls})
    model.compile(optimizer="sgd", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  loss_weights={"reg": 0.25, "cls": 2.0}, metrics={"cls": ["accuracy"]})
    logs = model.evaluate({"a": xa, "b": xb}, {"reg": y, "cls": labels}, return_dict=True)
    assert list(logs) == ["loss", "reg_loss", "cls_loss", "cls_accuracy"]
    pred = model.predict({"a": xa, "b": xb})
    mse = float(np.mean((pred["reg"].astype(np.float64) - y) ** 2))
    p = pred["cls"].astype(np.float64)[np.arange(len(labels)), labels]
    ce = float(np.mean(-np.log(p)))
    assert logs["reg_loss"] == pytest.approx(mse, rel=1e-5)  # Keras reports them unweighted
    assert logs["cls_loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["loss"] == pytest.approx(0.25 * mse + 2.0 * ce, rel=1e-5)
    hist = model.fit({"a": xa, "b": xb}, {"reg": y, "cls": labels}, epochs=2, verbose=0)
    assert set(hist.history) == {"loss", "reg_loss", "cls_loss", "cls_accuracy"}


def test_bad_wiring_is_a_clear_value_error():
    a = keras.Input(shape=(4,))
    b = keras.Input(shape=(3,))
    with pytest.raises(ValueError, match="one shape"):
        layers.Add()([a, b])
    with pytest.raises(ValueError, match="at least 2 inputs"):
        layers.Add()([a])
    other = keras.Input(shape=(4,), name="elsewhere")
    out = layers.Dense(2)(layers.Add()([a, other]))
    with pytest.raises(ValueError, match="not connected"):
        keras.Model(a, out)  # the output also depends on an Input not given
    stray = layers.Dense(2)(keras.Input(shape=(4,), name="another_graph"))
    with pytest.raises(ValueError, match="not connected|another graph"):
        keras.Model(a, stray)
    with pytest.raises(ValueError, match="keras.Input"):
        keras.Model(layers.Dense(3)(a), stray)
    with pytest.raises(ValueError, match="built for inputs"):
        d = layers.Dense(2)
        d(a)
        d(b)


def test_save_load_round_trip_and_config(tmp_path):
    xa, xb, y = _data()
    model = _two_input_skip()
    model.compile(optimizer="adam", loss="mse")
    model.fit([xa, xb], y, epochs=1, verbose=0)
    path = tmp_path / "func.fastnn"
    model.save(path)
    loaded = fastnn.models.load_model(path)
    assert isinstance(loaded, Functional)
    np.testing.assert_array_equal(loaded.predict([xa, xb]), model.predict([xa, xb]))
    h1 = model.fit([xa, xb], y, epochs=1, verbose=0, shuffle=False).history["loss"]
    h2 = loaded.fit([xa, xb], y, epochs=1, verbose=0, shuffle=False).history["loss"]
    assert h1 == h2  # the optimizer state travelled too
    again = fastnn.models.model_from_json(model.to_json())
    assert [type(l).__name__ for l in again.layers] == [type(l).__name__ for l in model.layers]
    again.set_weights(model.get_weights())
    np.testing.assert_array_equal(again.predict([xa, xb]), model.predict([xa, xb]))
    model.save_weights(tmp_path / "w.fastnn")
    again.load_weights(tmp_path / "w.fastnn")
    np.testing.assert_array_equal(again.predict([xa, xb]), model.predict([xa, xb]))


def test_multi_output_save_load_keeps_per_output_losses(tmp_path):
    a = keras.Input(shape=(4,))
    h = layers.Dense(6, activation="relu")(a)
    model = keras.Model(a, [layers.Dense(1, name="r")(h), layers.Dense(3, activation="softmax", name="c")(h)])
    model.compile(loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[0.5, 1.0],
                  metrics=[[], ["accuracy"]])
    xa, _, y = _data()
    labels = np.arange(len(y)) % 3
    model.save(tmp_path / "m.fastnn")
    loaded = fastnn.models.load_model(tmp_path / "m.fastnn")
    assert loaded.evaluate(xa, [y, labels], return_dict=True) == \
        model.evaluate(xa, [y, labels], return_dict=True)


def test_sequential_still_takes_keras_input():
    model = fastnn.Sequential([keras.Input(shape=(3,)), layers.Dense(2)])
    assert model.input_shape == (None, 3) and model.output_shape == (None, 2)


class _Residual(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = layers.Dense(8, activation="tanh")
        self.proj = layers.Dense(8)
        self.drop = layers.Dropout(0.1, seed=7)
        self.out = layers.Dense(1)

    def call(self, x, training=False):
        h = self.proj(x)
        h = layers.Add()([h, self.inner(h)])
        if training:
            h = self.drop(h)
        return self.out(h)


@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_a_subclassed_model_trains_evaluates_predicts_and_saves_weights(backend, tmp_path):
    fastnn.utils.set_random_seed(8)
    xa, _, _ = _data(128)
    y = (0.7 * xa[:, :1] - 0.5 * np.tanh(xa[:, 1:2])).astype(np.float32)
    with fastnn.backend_scope(backend):
        model = _Residual()
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        hist = model.fit(xa, y, epochs=20, batch_size=32, verbose=0)
        assert hist.history["loss"][-1] < 0.3 * hist.history["loss"][0]
        assert isinstance(model, _Residual) and isinstance(model.evaluate(xa, y), float)
        pred = model.predict(xa)
        model.save_weights(tmp_path / "r.fastnn")
        again = _Residual()
        again.predict(xa[:2])  # built by its first data, as in Keras
        again.load_weights(tmp_path / "r.fastnn")
        np.testing.assert_array_equal(again.predict(xa), pred)


def test_a_call_that_cannot_be_traced_says_so():
    class Bad(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(2)

        def call(self, x, training=False):
            return np.tanh(self.d(x)) * 2  # NumPy arithmetic on a symbolic tensor

    with pytest.raises(TypeError, match="could not be traced"):
        Bad().predict(np.zeros((3, 4), np.float32))


def test_recurrent_layers_in_a_graph_train_alike_on_both_backends():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 5, 3)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)
    results = {}
    for backend in ("native", "numpy"):
        with fastnn.backend_scope(backend):
            fastnn.utils.set_random_seed(3)
            inp = keras.Input(shape=(5, 3))
            h = layers.LSTM(6, return_sequences=True)(inp)
            out = layers.Dense(1, activation="sigmoid")(layers.GRU(4)(h))
            model = keras.Model(inp, out)
            model.compile("adam", "binary_crossentropy")
            history = model.fit(x, y, epochs=5, verbose=0).history["loss"]
            results[backend] = (history, model.predict(x))
    assert results["native"][0][-1] < results["native"][0][0]  # it trains
    np.testing.assert_allclose(results["native"][0], results["numpy"][0], rtol=1e-5)
    np.testing.assert_allclose(results["native"][1], results["numpy"][1], rtol=1e-4, atol=1e-6)


# -- recurrent states in a graph: return_state and initial_state --------------------------------
CELLS = [layers.LSTM, layers.GRU, layers.SimpleRNN]


def _encoder_decoder(cls, go_backwards=False, enc_sequences=False, state_output=False, units=4):
    """Keras's encoder-decoder: the encoder's final states start the decoder. With state_output
    the decoder's final states feed a second output too (their gradient enters the BPTT there)."""
    enc_in = keras.Input(shape=(5, 3), name="enc_in")
    enc = cls(units, return_state=True, go_backwards=go_backwards, return_sequences=enc_sequences,
              name="enc")
    states = enc(enc_in)[1:]
    dec_in = keras.Input(shape=(4, 2), name="dec_in")
    dec = cls(units, return_sequences=True, return_state=True, name="dec")
    dec_out, *dec_states = dec(dec_in, initial_state=states)
    out = layers.Dense(3, activation="softmax", name="out")(dec_out)
    if not state_output:
        return keras.Model([enc_in, dec_in], out)
    both = dec_states[0] if len(dec_states) == 1 else layers.Concatenate()(dec_states)
    return keras.Model([enc_in, dec_in], [out, layers.Dense(2, name="state_out")(both)])


def _s2s_data(n=12, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    xe = rng.normal(size=(n, 5, 3)).astype(dtype)
    xd = rng.normal(size=(n, 4, 2)).astype(dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, (n, 4))]
    return xe, xd, y, rng.normal(size=(n, 2)).astype(dtype)


@pytest.mark.parametrize("backend", ["numpy", "native"])
@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("go_backwards,enc_sequences", [(False, False), (True, True)])
def test_graph_with_states_equals_the_eager_layer_calls(cls, backend, go_backwards, enc_sequences):
    xe, xd, _, _ = _s2s_data()
    with fastnn.backend_scope(backend):
        fastnn.utils.set_random_seed(4)
        model = _encoder_decoder(cls, go_backwards, enc_sequences)
        enc, dec, dense = (model.get_layer(n) for n in ("enc", "dec", "out"))
        got = enc(xe)
        assert len(got) == (3 if cls is layers.LSTM else 2)
        seq, *states = dec(xd, initial_state=got[1:])
        want = dense(seq)
        np.testing.assert_allclose(model.predict([xe, xd]), want, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(model([xe, xd]), want, rtol=1e-6, atol=1e-7)
        # the states matter: zeros instead give other outputs
        assert not np.allclose(dense(dec(xd)[0]), want, atol=1e-4)
    enc_in = keras.Input(shape=(5, 3))
    outs = enc(enc_in)
    with fastnn.backend_scope(backend):
        states_model = keras.Model(enc_in, outs)
        for a, b in zip(states_model.predict(xe), got):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", CELLS)
def test_states_train_alike_on_both_backends_and_the_program_equals_eager_bitwise(cls):
    xe, xd, y, y2 = _s2s_data(16)
    fastnn.utils.set_random_seed(7)
    ref = _encoder_decoder(cls, go_backwards=cls is layers.GRU, enc_sequences=cls is layers.LSTM,
                           state_output=True)
    results = {}
    for run in ("numpy", "native", "eager"):
        with fastnn.backend_scope("numpy" if run == "numpy" else "native"):
            model = Functional.from_config(ref.get_config())
            model.set_weights(ref.get_weights())
            if run == "eager":
                model._program = lambda *args, **kwargs: None  # no recorded program
            model.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"])
            hist = model.fit([xe, xd], [y, y2], epochs=4, batch_size=8, verbose=0, shuffle=False)
            if run == "native":
                assert model._programs["train"][1] is not None  # the one-call native step
            results[run] = (hist.history["loss"], model.get_weights(), model.predict([xe, xd]))
    assert results["native"][0][-1] < results["native"][0][0]
    for a, b in zip(results["native"][1], results["eager"][1]):  # recorded == eager, bit for bit
        np.testing.assert_array_equal(a, b)
    assert results["native"][0] == results["eager"][0]
    np.testing.assert_allclose(results["numpy"][0], results["native"][0], rtol=1e-5)
    for a, b in zip(results["numpy"][1], results["native"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # the encoder learned through the states alone (its output is read by nobody)
    assert not np.array_equal(results["native"][1][0], ref.get_weights()[0])


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("go_backwards,enc_sequences", [(False, False), (True, False), (False, True)])
def test_gradient_check_through_initial_and_final_states(cls, go_backwards, enc_sequences):
    before = fastnn.floatx()
    fastnn.set_floatx("float64")
    try:
        fastnn.utils.set_random_seed(11)
        model = _encoder_decoder(cls, go_backwards, enc_sequences, state_output=True, units=3)
        model.compile(loss=["categorical_crossentropy", "mse"])
        xe, xd, y, y2 = _s2s_data(6, seed=2, dtype=np.float64)
        for backend in ("numpy", "native"):
            with fastnn.backend_scope(backend):
                errors = fastnn.utils.gradient_check(model, [xe, xd], [y, y2])
            assert {"enc", "dec", "out", "state_out"} <= set(errors)
            assert max(errors.values()) < 1e-6, (backend, errors)
    finally:
        fastnn.set_floatx(before)


def test_gradient_check_fails_when_a_state_gradient_is_dropped(monkeypatch):
    """The check can fail: dropping the gradient that reaches the encoder's final c (the LSTM's
    seed dc_last) makes the encoder's gradient wrong."""
    from fastnn import recurrent
    before = fastnn.floatx()
    fastnn.set_floatx("float64")
    try:
        fastnn.utils.set_random_seed(11)
        model = _encoder_decoder(layers.LSTM, units=3)
        model.compile(loss="categorical_crossentropy")
        xe, xd, y, _ = _s2s_data(6, seed=2, dtype=np.float64)
        original = recurrent.LSTM._seed
        monkeypatch.setattr(recurrent.LSTM, "_seed", lambda self, i: None if i == 1 else original(self, i))
        with fastnn.backend_scope("numpy"):
            errors = fastnn.utils.gradient_check(model, [xe, xd], y)
        assert errors["enc"] > 1e-3 and errors["dec"] < 1e-6
    finally:
        fastnn.set_floatx(before)


def test_state_graph_config_save_load_and_summary(tmp_path):
    fastnn.utils.set_random_seed(3)
    model = _encoder_decoder(layers.LSTM, go_backwards=True, state_output=True)
    model.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"])
    xe, xd, y, y2 = _s2s_data()
    model.fit([xe, xd], [y, y2], epochs=1, verbose=0)
    config = model.get_config()
    dec = next(e for e in config["layers"] if e["name"] == "dec")
    assert dec["inbound_nodes"] == [{"args": [["dec_in", 0]],
                                     "initial_state": [["enc", 0, 1], ["enc", 0, 2]]}]
    again = Functional.from_config(config)
    again.set_weights(model.get_weights())
    for a, b in zip(again.predict([xe, xd]), model.predict([xe, xd])):
        np.testing.assert_array_equal(a, b)
    path = tmp_path / "s2s.fastnn"
    model.save(path)
    loaded = fastnn.models.load_model(path)
    for a, b in zip(loaded.predict([xe, xd]), model.predict([xe, xd])):
        np.testing.assert_array_equal(a, b)
    loaded.fit([xe, xd], [y, y2], epochs=1, verbose=0)  # it trains on
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "[(None, 4), (None, 4), (None, 4)]" in text and "enc[1], enc[2]" in text


def test_wrong_states_are_refused_before_anything_changes():
    x = keras.Input(shape=(5, 3))
    h = keras.Input(shape=(4,))
    h5 = keras.Input(shape=(5,))
    lstm = layers.LSTM(4)
    with pytest.raises(ValueError, match=r"takes 2 initial state tensor\(s\) \(h, c\), got 1"):
        lstm(x, initial_state=h)
    with pytest.raises(ValueError, match=r"initial state c must have shape \(None, 4\), got \(None, 5\)"):
        lstm(x, initial_state=[h, h5])
    with pytest.raises(TypeError, match="must be tensors of the graph"):
        lstm(x, initial_state=[h, np.zeros((2, 4), np.float32)])
    assert not lstm.built  # nothing changed
    gru = layers.GRU(4)
    out = gru(x, initial_state=h)  # one tensor for a layer of one state
    assert out.shape == (None, 4) and gru.built
    with pytest.raises(TypeError, match="symbolic initial_state"):
        gru(np.zeros((2, 5, 3), np.float32), initial_state=[h])
    with pytest.raises(TypeError):
        layers.Dense(3)(h, initial_state=[h])
    with pytest.raises(ValueError, match="fixed number of timesteps"):
        keras.Input(shape=(None, 3))


def _reverse_task(n, length, vocab, rng):
    """Token sequences (1..vocab-1) and their reversal; the decoder reads 0 (start) then the
    target shifted by one (teacher forcing)."""
    src = rng.integers(1, vocab, (n, length))
    tgt = src[:, ::-1]
    dec_in = np.concatenate([np.zeros((n, 1), np.int64), tgt[:, :-1]], axis=1)
    return src.astype(np.float32), dec_in.astype(np.float32), tgt


def test_a_seq2seq_model_learns_to_reverse_sequences():
    rng = np.random.default_rng(0)
    length, vocab = 4, 6
    src, dec_in, tgt = _reverse_task(1600, length, vocab, rng)
    fastnn.utils.set_random_seed(0)
    enc_tokens = keras.Input(shape=(length,))
    dec_tokens = keras.Input(shape=(length,))
    _, h, c = layers.LSTM(32, return_state=True)(layers.Embedding(vocab, 8)(enc_tokens))
    dec_out, _, _ = layers.LSTM(32, return_sequences=True, return_state=True)(
        layers.Embedding(vocab, 8)(dec_tokens), initial_state=[h, c])
    out = layers.Dense(vocab, activation="softmax")(dec_out)
    model = keras.Model([enc_tokens, dec_tokens], out)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit([src, dec_in], tgt, epochs=12, batch_size=64, verbose=0)
    s2, d2, t2 = _reverse_task(400, length, vocab, rng)  # held out
    accuracy = (model.predict([s2, d2]).argmax(-1) == t2).mean()
    assert accuracy > 0.9, accuracy  # chance: 1/5


def test_state_graph_keras_file_round_trip(tmp_path):
    """A .keras file of the encoder-decoder: Keras's layout (initial_state in the call's kwargs,
    the states as tensor indices 1 and 2 of the encoder's call), read back with the same outputs."""
    import json
    import zipfile
    fastnn.utils.set_random_seed(5)
    model = _encoder_decoder(layers.LSTM, go_backwards=True)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    path = tmp_path / "s2s.keras"
    model.save(path)
    config = json.loads(zipfile.ZipFile(path).read("config.json"))["config"]
    dec = next(e for e in config["layers"] if e["name"] == "dec")
    kwargs = dec["inbound_nodes"][0]["kwargs"]
    assert [t["config"]["keras_history"] for t in kwargs["initial_state"]] == [["enc", 0, 1], ["enc", 0, 2]]
    loaded = fastnn.models.load_model(path)
    xe, xd, y, _ = _s2s_data()
    np.testing.assert_array_equal(loaded.predict([xe, xd]), model.predict([xe, xd]))
    loaded.fit([xe, xd], y, epochs=1, verbose=0)


def test_state_graph_exports_to_onnx():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    xe, xd, _, _ = _s2s_data()
    for cls in CELLS:
        fastnn.utils.set_random_seed(1)
        model = _encoder_decoder(cls, go_backwards=True, enc_sequences=True, state_output=True)
        session = ort.InferenceSession(fastnn.export.to_onnx(model).SerializeToString())
        got = session.run(None, {"enc_in": xe, "dec_in": xd})
        for a, b in zip(got, model.predict([xe, xd])):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
