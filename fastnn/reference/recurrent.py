"""Recurrent cells over whole sequences: SimpleRNN, LSTM and GRU, forward and backpropagation
through time (BPTT).

A recurrent layer reads a sequence x[:, 0], x[:, 1], ..., x[:, T-1] one step at a time and carries a
state h from step to step (course notes 003, section 9: the same weights at every step, the state
as the network's memory). Every cell here has the same outline:

    a_t = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias      (all gates at once)
    h_t = cell(a_t, state_{t-1})

The input projection ``x @ kernel`` of all steps is one matrix product (it does not depend on the
state); only the recurrent product ``h_{t-1} @ recurrent_kernel`` must wait for the previous step.

Layouts are Keras's: kernel (F, k*U), recurrent_kernel (U, k*U), bias (k*U,) with the gates side by
side in Keras's order (LSTM: i, f, c, o; GRU: z, r, h). ``reverse`` processes the sequence from the
last step to the first (Keras's ``go_backwards``); ``hseq`` holds the states in processing order,
as Keras returns them, while the caches (``z``, ``gates``...) are indexed by input time.

Backpropagation through time walks the steps in reverse processing order. At each step the
gradient reaching the state is the loss's own gradient for that step's output (when the layer
returns sequences) plus what flows back from the next step through the recurrent kernel:

    dh_t = dy_t + da_{t+1} @ recurrent_kernel.T

The weight gradients are sums over every step and sample; they are taken at the end as single
matrix products over all N*T rows, so their summation order never depends on the thread count:

    dkernel = sum_t x_t.T @ da_t          drecurrent = sum_t h_{t-1}.T @ da_t
    dbias   = sum_t sum_n da_t            dx_t       = da_t @ kernel.T

Repeated multiplication by the recurrent kernel (and by activation slopes below 1) is why gradients
vanish or explode over long sequences (notes 003 section 9.3); the LSTM's additive cell update
``c_t = f * c_{t-1} + i * g`` is the path along which they survive.

Shapes: x [N, T, F], h0/c0 [N, U] (None: zeros), hseq [N, T, U]; dy [N, T, U] when ``sequences``,
else [N, U] (the gradient of the last state only), or None when no gradient reaches the outputs.

The final state can be an output of its own (Keras's ``return_state``: another layer reads it,
e.g. as its ``initial_state``). The gradient reaching it from there, ``dh_last`` [N, U] (and the
LSTM's ``dc_last`` for the final cell state), is where the walk starts instead of zeros::

    dh_{T} (running) = dh_last        dc_{T} (running) = dc_last

so it adds to the outputs' gradient at the last processing step (``dy_{T-1} + dh_last``), and
the gradients of the initial states ``dh0``/``dc0`` carry it on to whoever gave them.
"""
import numpy as np

from .activations import act_backward, act_forward
from .dropout import dropout_forward


def _into(out, value, dtype):
    if out is None:
        return np.asarray(value, dtype=dtype)
    out[...] = value
    return out


def _order(T, reverse):
    """Input time of each processing step."""
    return list(range(T - 1, -1, -1)) if reverse else list(range(T))


def _start(state, n, units, dtype):
    return np.zeros((n, units), dtype) if state is None else state


def _input_projection(x, kernel, bias, xmask=None):
    """``x @ kernel + bias`` for every step at once; with per-gate input dropout (``xmask``
    [N, k*F], one block of F per gate, fixed over time) each gate reads its own masked input::

        block g = (x_t * xmask[:, g*F:(g+1)*F]) @ kernel[:, g*U:(g+1)*U]
    """
    n, t, f = x.shape
    if xmask is None:
        z = (x.reshape(n * t, f) @ kernel).reshape(n, t, kernel.shape[1])
    else:
        k = xmask.shape[1] // f
        u = kernel.shape[1] // k
        z = np.concatenate([(x * xmask[:, None, g * f:(g + 1) * f]) @ kernel[:, g * u:(g + 1) * u]
                            for g in range(k)], axis=2)
    return z if bias is None else z + bias


def _masked_input_grads(x, da, kernel, xmask, dx, dkernel, need_dx):
    """The input side's gradients through :func:`_input_projection` with ``xmask``:
    ``dkernel_g = (x * xmask_g).T @ da_g`` summed over the N*T rows, and
    ``dx = sum over g of (da_g @ kernel_g.T) * xmask_g`` (in block order)."""
    n, t, f = x.shape
    k = xmask.shape[1] // f
    u = kernel.shape[1] // k
    blocks, total = [], None
    for g in range(k):
        m = xmask[:, None, g * f:(g + 1) * f]
        da_g = da[:, :, g * u:(g + 1) * u]
        blocks.append((x * m).reshape(n * t, f).T @ da_g.reshape(n * t, u))
        part = (da_g @ kernel[:, g * u:(g + 1) * u].T) * m
        total = part if total is None else total + part
    dkernel = _into(dkernel, np.concatenate(blocks, axis=1), x.dtype)
    dx = _into(dx, total, x.dtype) if need_dx else None
    return dx, dkernel


def _step_grad(dy, dh_next, s, T, sequences):
    """The gradient reaching the state of processing step s (dy None: none from the outputs)."""
    if dy is None:
        return dh_next
    if sequences:
        return dy[:, s] + dh_next
    return dh_next + dy if s == T - 1 else dh_next


def _rec_product(h, recurrent_kernel, rmask, gates):
    """The recurrent product of the first ``gates`` blocks, ``h @ recurrent_kernel[:, :gates*U]``;
    with recurrent dropout each block reads its own masked state (Keras 3's per-gate masks)::

        block g = (h * rmask[:, g*U:(g+1)*U]) @ recurrent_kernel[:, g*U:(g+1)*U]
    """
    u = h.shape[1]
    if rmask is None:
        return h @ recurrent_kernel[:, :gates * u]
    return np.concatenate([(h * rmask[:, g * u:(g + 1) * u]) @ recurrent_kernel[:, g * u:(g + 1) * u]
                           for g in range(gates)], axis=1)


def _rec_state_grad(da, recurrent_kernel, rmask, gates):
    """The gradient reaching h_{t-1} through :func:`_rec_product`: the sum over the blocks of
    ``(da_g @ recurrent_kernel_g.T) * rmask_g`` (in block order)."""
    u = recurrent_kernel.shape[0]
    if rmask is None:
        return da[:, :gates * u] @ recurrent_kernel[:, :gates * u].T
    total = None
    for g in range(gates):
        part = (da[:, g * u:(g + 1) * u] @ recurrent_kernel[:, g * u:(g + 1) * u].T) \
            * rmask[:, g * u:(g + 1) * u]
        total = part if total is None else total + part
    return total


def _rec_kernel_grad(hprev, da, rmask, g0, g1, scale=None):
    """The recurrent kernel's gradient for blocks [g0, g1): the sum over the N*T rows of
    ``(scale * hprev * rmask_g).T @ da_g`` (rmask of the row's sample; scale, the GRU's reset
    gate, optional). Shapes: hprev [N, T, U], da [N, T, k*U], rmask [N, k*U] or None."""
    n, t, u = hprev.shape
    rows = da.reshape(n * t, da.shape[-1])
    blocks = []
    for g in range(g0, g1):
        left = hprev if rmask is None else hprev * rmask[:, None, g * u:(g + 1) * u]
        if scale is not None:
            left = scale * left
        blocks.append(left.reshape(n * t, u).T @ rows[:, g * u:(g + 1) * u])
    return np.concatenate(blocks, axis=1)


def _weight_grads(x, hprev, da, kernel, dx, dkernel, drecurrent, dbias, need_dx,
                  recurrent_da=None):
    """The sums over all steps, as single products over the N*T rows (see the module docstring);
    returns (dx, dkernel, drecurrent) and fills dbias when given."""
    n, t, f = x.shape
    rows = da.reshape(n * t, da.shape[-1])
    rec_rows = rows if recurrent_da is None else recurrent_da.reshape(n * t, da.shape[-1])
    dkernel = _into(dkernel, x.reshape(n * t, f).T @ rows, x.dtype)
    drecurrent = _into(drecurrent, hprev.reshape(n * t, hprev.shape[-1]).T @ rec_rows, x.dtype)
    if dbias is not None:
        if dbias.ndim == 2:  # GRU with reset_after: input bias, then recurrent bias
            _into(dbias, np.stack([rows.sum(axis=0), rec_rows.sum(axis=0)]), x.dtype)
        else:
            _into(dbias, rows.sum(axis=0), x.dtype)
    dx = _into(dx, (rows @ kernel.T).reshape(n, t, f), x.dtype) if need_dx else None
    return dx, dkernel, drecurrent


# -- SimpleRNN --------------------------------------------------------------------------------------
def simple_rnn_forward(x, kernel, recurrent_kernel, bias, h0, activation="tanh", alpha=0.0,
                       reverse=False, z=None, hseq=None, hlast=None, rmask=None, xmask=None):
    """Elman's recurrent cell (Keras's ``SimpleRNN``)::

        a_t = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias
        h_t = activation(a_t)

    Shapes: kernel [F, U], recurrent_kernel [U, U], bias [U]. Writes the pre-activations ``z``
    [N, T, U] (input time), the states ``hseq`` [N, T, U] (processing order) and, when given,
    the last state ``hlast`` [N, U]; returns hseq.

    Recurrent dropout (training only): ``rmask`` [N, k*U] (k gates; 0 or 1/(1-rate), one mask per
    sequence, fixed over time) multiplies h_{t-1} before each gate's recurrent product, as Keras 3
    does: here ``a_t = x_t @ kernel + (h_{t-1} * rmask) @ recurrent_kernel + bias``; the LSTM and
    GRU give each gate its own block of the mask (see :func:`_rec_product`).

    Input dropout per gate (training only): ``xmask`` [N, k*F] gives each gate's input projection
    its own mask of x, fixed over time (see :func:`_input_projection`): Keras 3's input dropout
    when recurrent dropout is on too (its ``implementation=1``); the backward's dx is then the
    gradient of the unmasked x. Without recurrent dropout Keras masks x once for all gates, which
    is :func:`sequence_dropout_step` before the cell.
    """
    n, T, _ = x.shape
    units = recurrent_kernel.shape[0]
    a = _input_projection(x, kernel, bias, xmask)
    out_z = np.empty_like(a)
    out_h = np.empty((n, T, units), x.dtype)
    h = _start(h0, n, units, x.dtype)
    for s, t in enumerate(_order(T, reverse)):
        out_z[:, t] = a[:, t] + _rec_product(h, recurrent_kernel, rmask, 1)
        h = act_forward(out_z[:, t], activation, alpha)
        out_h[:, s] = h
    _into(z, out_z, x.dtype)
    _scratch((hlast, h))
    return _into(hseq, out_h, x.dtype)


def _seed(grad, n, units, dtype):
    """The running state gradient before the walk: a copy of ``grad`` (the final state's own
    gradient), or zeros when None."""
    return np.zeros((n, units), dtype) if grad is None else np.array(grad, dtype=dtype, copy=True)


def _scratch(*pairs):
    """Copies the twin's intermediate arrays into the native kernel's scratch buffers, if given."""
    for given, value in pairs:
        if given is not None:
            given[...] = value


def _previous_states(hseq, h0, T, reverse):
    """h_{t-1} for every input time t: the state before processing t."""
    n, _, units = hseq.shape
    hprev = np.empty_like(hseq)
    prev = _start(h0, n, units, hseq.dtype)
    for s, t in enumerate(_order(T, reverse)):
        hprev[:, t] = prev
        prev = hseq[:, s]
    return hprev


def simple_rnn_backward(dy, x, kernel, recurrent_kernel, h0, z, hseq, activation="tanh", alpha=0.0,
                        reverse=False, sequences=True, dx=None, dkernel=None, drecurrent=None,
                        dbias=None, dh0=None, need_dx=True, dz=None, hprev=None, dh_last=None,
                        rmask=None, xmask=None):
    """BPTT through :func:`simple_rnn_forward`::

        dh_t = dy_t + da_{t+1} @ recurrent_kernel.T
        da_t = dh_t * activation'(a_t)

    then the weight sums of the module docstring, the walk starting from ``dh_last`` (the final
    state's own gradient, module docstring; None: zeros); ``dh0`` receives the gradient of the
    initial state; ``dz`` (when given) the pre-activation gradients da [N, T, U] and ``hprev`` the states
    h_{t-1} [N, T, U], both by input time (the native kernel's scratch). Returns (dx, dkernel,
    drecurrent, dbias, dh0); dbias None when not given.
    """
    n, T, _ = x.shape
    units = recurrent_kernel.shape[0]
    order = _order(T, reverse)
    da = np.empty_like(z)
    dh_next = _seed(dh_last, n, units, x.dtype)
    for s in range(T - 1, -1, -1):
        t = order[s]
        dh = _step_grad(dy, dh_next, s, T, sequences)
        da[:, t] = act_backward(dh, z[:, t], hseq[:, s], activation, alpha)
        dh_next = _rec_state_grad(da[:, t], recurrent_kernel, rmask, 1)
    previous = _previous_states(hseq, h0, T, reverse)
    dx, dkernel, drecurrent = _weight_grads(x, previous, da, kernel, dx, dkernel, drecurrent,
                                            dbias, need_dx)
    if rmask is not None:
        drecurrent = _into(drecurrent, _rec_kernel_grad(previous, da, rmask, 0, 1), x.dtype)
    if xmask is not None:
        dx, dkernel = _masked_input_grads(x, da, kernel, xmask, dx, dkernel, need_dx)
    _scratch((dz, da), (hprev, previous))
    return dx, dkernel, drecurrent, dbias, _into(dh0, dh_next, x.dtype)


# -- LSTM -------------------------------------------------------------------------------------------
def lstm_forward(x, kernel, recurrent_kernel, bias, h0, c0, activation="tanh", alpha=0.0,
                 recurrent_activation="sigmoid", recurrent_alpha=0.0, reverse=False, z=None,
                 gates=None, cseq=None, tc=None, hseq=None, hlast=None, rmask=None, xmask=None):
    """Long short-term memory (Hochreiter & Schmidhuber 1997; Keras's ``LSTM``), gates i, f, c, o::

        a_t = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias        [N, 4U]
        i = sigma(a_i)   f = sigma(a_f)   g = act(a_c)   o = sigma(a_o)
        c_t = f * c_{t-1} + i * g          (the cell state: added to, not multiplied through)
        h_t = o * act(c_t)

    sigma is ``recurrent_activation`` (sigmoid), act is ``activation`` (tanh). Writes z (the
    pre-activations a) and gates (i, f, g, o) [N, T, 4U], cseq (c_t) and tc (act(c_t)) [N, T, U] by
    input time, hseq [N, T, U] in processing order, hlast [N, U] (the last state) when given;
    returns hseq.
    """
    n, T, _ = x.shape
    units = recurrent_kernel.shape[0]
    a = _input_projection(x, kernel, bias, xmask)
    out = {k: np.empty((n, T, 4 * units), x.dtype) for k in ("z", "gates")}
    out.update({k: np.empty((n, T, units), x.dtype) for k in ("cseq", "tc", "hseq")})
    h, c = _start(h0, n, units, x.dtype), _start(c0, n, units, x.dtype)
    for s, t in enumerate(_order(T, reverse)):
        at = a[:, t] + _rec_product(h, recurrent_kernel, rmask, 4)
        i = act_forward(at[:, :units], recurrent_activation, recurrent_alpha)
        f = act_forward(at[:, units:2 * units], recurrent_activation, recurrent_alpha)
        g = act_forward(at[:, 2 * units:3 * units], activation, alpha)
        o = act_forward(at[:, 3 * units:], recurrent_activation, recurrent_alpha)
        c = f * c + i * g
        tct = act_forward(c, activation, alpha)
        h = o * tct
        out["z"][:, t], out["gates"][:, t] = at, np.concatenate([i, f, g, o], axis=1)
        out["cseq"][:, t], out["tc"][:, t], out["hseq"][:, s] = c, tct, h
    for name, given in (("z", z), ("gates", gates), ("cseq", cseq), ("tc", tc)):
        _into(given, out[name], x.dtype)
    _scratch((hlast, h))
    return _into(hseq, out["hseq"], x.dtype)


def lstm_backward(dy, x, kernel, recurrent_kernel, h0, c0, z, gates, cseq, tc, hseq,
                  activation="tanh", alpha=0.0, recurrent_activation="sigmoid",
                  recurrent_alpha=0.0, reverse=False, sequences=True, dx=None, dkernel=None,
                  drecurrent=None, dbias=None, dh0=None, dc0=None, need_dx=True, dz=None,
                  hprev=None, dh_last=None, dc_last=None, rmask=None, xmask=None):
    """BPTT through :func:`lstm_forward`. With dh_t the gradient reaching h_t and dc the one
    reaching c_t from the next step::

        dc   = dc_{t+1} * f_{t+1} + dh_t * o * act'(c_t)
        do = dh_t * act(c_t)   di = dc * g   dg = dc * i   df = dc * c_{t-1}
        da   = [di, df, dg, do] * (the slope of each gate's activation at a)
        dh_{t-1} (recurrent part) = da @ recurrent_kernel.T

    The walk starts from ``dh_last`` and ``dc_last`` (the final states' own gradients, module
    docstring; None: zeros). ``dz`` and ``hprev`` as in :func:`simple_rnn_backward` (da is
    [N, T, 4U]). Returns (dx,
    dkernel, drecurrent, dbias, dh0, dc0).
    """
    n, T, _ = x.shape
    units = recurrent_kernel.shape[0]
    u = units
    order = _order(T, reverse)
    da = np.empty_like(z)
    dh_next = _seed(dh_last, n, units, x.dtype)
    dc_next = _seed(dc_last, n, units, x.dtype)
    c_start = _start(c0, n, units, x.dtype)
    for s in range(T - 1, -1, -1):
        t = order[s]
        dh = _step_grad(dy, dh_next, s, T, sequences)
        i, f, g, o = (gates[:, t, k * u:(k + 1) * u] for k in range(4))
        c_prev = cseq[:, order[s - 1]] if s > 0 else c_start
        dc = dc_next + act_backward(dh * o, cseq[:, t], tc[:, t], activation, alpha)
        zt = z[:, t]
        da[:, t, :u] = act_backward(dc * g, zt[:, :u], i, recurrent_activation, recurrent_alpha)
        da[:, t, u:2 * u] = act_backward(dc * c_prev, zt[:, u:2 * u], f, recurrent_activation,
                                         recurrent_alpha)
        da[:, t, 2 * u:3 * u] = act_backward(dc * i, zt[:, 2 * u:3 * u], g, activation, alpha)
        da[:, t, 3 * u:] = act_backward(dh * tc[:, t], zt[:, 3 * u:], o, recurrent_activation,
                                        recurrent_alpha)
        dc_next = dc * f
        dh_next = _rec_state_grad(da[:, t], recurrent_kernel, rmask, 4)
    previous = _previous_states(hseq, h0, T, reverse)
    dx, dkernel, drecurrent = _weight_grads(x, previous, da, kernel, dx, dkernel, drecurrent,
                                            dbias, need_dx)
    if rmask is not None:
        drecurrent = _into(drecurrent, _rec_kernel_grad(previous, da, rmask, 0, 4), x.dtype)
    if xmask is not None:
        dx, dkernel = _masked_input_grads(x, da, kernel, xmask, dx, dkernel, need_dx)
    _scratch((dz, da), (hprev, previous))
    return (dx, dkernel, drecurrent, dbias, _into(dh0, dh_next, x.dtype),
            _into(dc0, dc_next, x.dtype))


# -- GRU --------------------------------------------------------------------------------------------
def gru_forward(x, kernel, recurrent_kernel, bias, h0, activation="tanh", alpha=0.0,
                recurrent_activation="sigmoid", recurrent_alpha=0.0, reset_after=True,
                reverse=False, zx=None, zr=None, gates=None, hseq=None, hlast=None, rmask=None,
                xmask=None):
    """Gated recurrent unit (Cho et al. 2014; Keras's ``GRU``), gates z (update), r (reset), h::

        [x_z, x_r, x_h] = x_t @ kernel + b_input
        [r_z, r_r, r_h] = h_{t-1} @ recurrent_kernel + b_recurrent       (reset_after=True)
        z = sigma(x_z + r_z)    r = sigma(x_r + r_r)
        hh = act(x_h + r * r_h)
        h_t = z * h_{t-1} + (1 - z) * hh

    With ``reset_after=False`` (the original paper's form) the reset gate applies before the
    product: ``hh = act(x_h + (r * h_{t-1}) @ recurrent_kernel[:, 2U:])`` and the bias is one
    vector [3U] added to the input side. bias is [2, 3U] (input row, recurrent row) with
    reset_after, else [3U]. Writes zx and zr (the two projections; zr's last block is the product
    that feeds hh) and gates (z, r, hh) [N, T, 3U] by input time, hseq in processing order,
    hlast [N, U] when given; returns hseq. With recurrent dropout (``rmask`` [N, 3U]) each block's
    product reads h_{t-1} times its block of the mask (without reset_after the h block's is
    ``(r * (h_{t-1} * rmask_h)) @ recurrent_kernel_h``), while the mix ``z * h_{t-1}`` reads the
    unmasked state, as in Keras 3.
    """
    n, T, _ = x.shape
    u = recurrent_kernel.shape[0]
    b_in = None if bias is None else (bias[0] if reset_after else bias)
    b_rec = None if bias is None or not reset_after else bias[1]
    px = _input_projection(x, kernel, b_in, xmask)
    out_r = np.empty_like(px)
    out_g = np.empty_like(px)
    out_h = np.empty((n, T, u), x.dtype)
    h = _start(h0, n, u, x.dtype)
    for s, t in enumerate(_order(T, reverse)):
        xt = px[:, t]
        if reset_after:
            rt = _rec_product(h, recurrent_kernel, rmask, 3)
            rt = rt if b_rec is None else rt + b_rec
        else:
            rt = np.empty_like(xt)
            rt[:, :2 * u] = _rec_product(h, recurrent_kernel, rmask, 2)
        zg = act_forward(xt[:, :u] + rt[:, :u], recurrent_activation, recurrent_alpha)
        rg = act_forward(xt[:, u:2 * u] + rt[:, u:2 * u], recurrent_activation, recurrent_alpha)
        if reset_after:
            hh = act_forward(xt[:, 2 * u:] + rg * rt[:, 2 * u:], activation, alpha)
        else:
            hm = h if rmask is None else h * rmask[:, 2 * u:]
            rt[:, 2 * u:] = (rg * hm) @ recurrent_kernel[:, 2 * u:]
            hh = act_forward(xt[:, 2 * u:] + rt[:, 2 * u:], activation, alpha)
        h = zg * h + (1 - zg) * hh
        out_r[:, t], out_g[:, t], out_h[:, s] = rt, np.concatenate([zg, rg, hh], axis=1), h
    _into(zx, px, x.dtype)
    _into(zr, out_r, x.dtype)
    _into(gates, out_g, x.dtype)
    _scratch((hlast, h))
    return _into(hseq, out_h, x.dtype)


def gru_backward(dy, x, kernel, recurrent_kernel, h0, zx, zr, gates, hseq, activation="tanh",
                 alpha=0.0, recurrent_activation="sigmoid", recurrent_alpha=0.0, reset_after=True,
                 reverse=False, sequences=True, dx=None, dkernel=None, drecurrent=None, dbias=None,
                 dh0=None, need_dx=True, dax=None, dar=None, hprev=None, work=None, dh_last=None,
                 rmask=None, xmask=None):
    """BPTT through :func:`gru_forward`. With dh the gradient reaching h_t::

        dz = dh * (h_{t-1} - hh)     dhh = dh * (1 - z)     (and dh * z straight to h_{t-1})
        da_h = dhh * act'(pre_h)
        reset_after:  dr = da_h * r_h,  the recurrent side's h block gets da_h * r
        otherwise:    d(r * h_{t-1}) = da_h @ recurrent_kernel[:, 2U:].T,  dr = that * h_{t-1}
        da_z, da_r = dz, dr times the gate slopes

    ``dax``/``dar`` (when given) receive the gradients of the input-side and recurrent-side
    pre-activations [N, T, 3U], ``hprev`` the states h_{t-1} (r * h_{t-1} without reset_after);
    ``work`` [N, U] is the native kernel's scratch; the walk starts from ``dh_last`` (module
    docstring; None: zeros). Returns (dx, dkernel, drecurrent, dbias, dh0).
    """
    n, T, _ = x.shape
    u = recurrent_kernel.shape[0]
    order = _order(T, reverse)
    previous = hprev_all = _previous_states(hseq, h0, T, reverse)
    da_x = np.empty_like(zx)   # gradient of the input-side pre-activations
    da_r = np.empty_like(zx)   # gradient of the recurrent-side products
    dh_next = _seed(dh_last, n, u, x.dtype)
    for s in range(T - 1, -1, -1):
        t = order[s]
        dh = _step_grad(dy, dh_next, s, T, sequences)
        zg, rg, hh = (gates[:, t, k * u:(k + 1) * u] for k in range(3))
        hp = previous[:, t]
        xt, rt = zx[:, t], zr[:, t]
        pre_h = xt[:, 2 * u:] + (rg * rt[:, 2 * u:] if reset_after else rt[:, 2 * u:])
        da_h = act_backward(dh * (1 - zg), pre_h, hh, activation, alpha)
        if reset_after:
            dr = da_h * rt[:, 2 * u:]
            da_r[:, t, 2 * u:] = da_h * rg
        else:
            d_rh = da_h @ recurrent_kernel[:, 2 * u:].T
            mh = 1 if rmask is None else rmask[:, 2 * u:]
            dr = d_rh * (hp * mh) if rmask is not None else d_rh * hp
            da_r[:, t, 2 * u:] = da_h
        grad_z = act_backward(dh * (hp - hh), xt[:, :u] + rt[:, :u], zg, recurrent_activation,
                              recurrent_alpha)
        grad_r = act_backward(dr, xt[:, u:2 * u] + rt[:, u:2 * u], rg, recurrent_activation,
                              recurrent_alpha)
        da_x[:, t] = np.concatenate([grad_z, grad_r, da_h], axis=1)
        da_r[:, t, :2 * u] = da_x[:, t, :2 * u]
        if reset_after:
            dh_next = dh * zg + _rec_state_grad(da_r[:, t], recurrent_kernel, rmask, 3)
        else:
            dh_next = (dh * zg + _rec_state_grad(da_r[:, t], recurrent_kernel, rmask, 2)
                       + d_rh * rg * mh)
    if reset_after:
        dx, dkernel, drecurrent = _weight_grads(x, previous, da_x, kernel, dx, dkernel, drecurrent,
                                                dbias, need_dx, recurrent_da=da_r)
        if rmask is not None:
            drecurrent = _into(drecurrent, _rec_kernel_grad(previous, da_r, rmask, 0, 3), x.dtype)
    else:
        # the h block of the recurrent kernel multiplies r * h_{t-1}, not h_{t-1}
        rows = n * T
        dr_rows = da_r.reshape(rows, 3 * u)
        grad = np.empty_like(recurrent_kernel)
        grad[:, :2 * u] = _rec_kernel_grad(previous, da_r, rmask, 0, 2)
        left = (gates[:, :, u:2 * u] * previous).reshape(rows, u)
        grad[:, 2 * u:] = _rec_kernel_grad(previous, da_r, rmask, 2, 3, scale=gates[:, :, u:2 * u])
        dx, dkernel, _ = _weight_grads(x, previous, da_x, kernel, dx, dkernel, None, dbias, need_dx)
        drecurrent = _into(drecurrent, grad, x.dtype)
    if xmask is not None:
        dx, dkernel = _masked_input_grads(x, da_x, kernel, xmask, dx, dkernel, need_dx)
    if not reset_after:  # the native kernel reuses hprev for r * h_{t-1} at the end
        hprev_all = left.reshape(hprev_all.shape)
    _scratch((dax, da_x), (dar, da_r), (hprev, hprev_all))
    return dx, dkernel, drecurrent, dbias, _into(dh0, dh_next, x.dtype)


# -- dropout on the inputs of a recurrent layer ----------------------------------------------------
def sequence_dropout_step(x, rate, stream, out=None, mask=None):
    """Inverted dropout with one mask per sequence (Keras's ``dropout=`` of a recurrent layer):
    the same features of a sample are dropped at every step, so the cell sees a consistent input
    rather than a new random pattern per step (Gal & Ghahramani 2016)::

        mask[n, f] = 1 / (1 - rate) if kept else 0     (``dropout_forward``'s generator on an
                                                        [N, F] array, seed = stream[0],
                                                        counter = stream[1])
        out[n, t, f] = x[n, t, f] * mask[n, f]

    then ``stream[1] += 1`` (a new mask next call). Shapes: x, out [N, T, F]; mask [N, F].
    Returns (out, mask).
    """
    n, _, f = x.shape
    _, m = dropout_forward(np.ones((n, f), x.dtype), rate, int(stream[0]), int(stream[1]))
    stream[1] += np.uint64(1)
    return _into(out, x * m[:, None, :], x.dtype), _into(mask, m, x.dtype)


def sequence_dropout_backward(dy, mask, out=None):
    """Gradient of :func:`sequence_dropout_step`: ``dx[n, t, f] = dy[n, t, f] * mask[n, f]``."""
    return _into(out, dy * mask[:, None, :], dy.dtype)


# -- Embedding --------------------------------------------------------------------------------------
def embedding_forward(tokens, embeddings, out=None):
    """Row lookup: ``out[n, t] = embeddings[tokens[n, t]]``.

    Shapes: tokens [N, T] holding whole numbers in [0, V) (in the model's float dtype, exact below
    2**24 in float32; the layer checks them), embeddings [V, D] -> out [N, T, D].
    """
    return _into(out, embeddings[tokens.astype(np.int64)], embeddings.dtype)


def embedding_backward(dy, tokens, dembeddings=None):
    """Gradient of :func:`embedding_forward`: each row of dy is added to its token's row,
    ``dembeddings[v] = sum over (n, t) with tokens[n, t] == v of dy[n, t]``, in (n, t) order.

    Shapes: dy [N, T, D], tokens [N, T] -> dembeddings [V, D] (overwritten).
    """
    grad = np.zeros_like(dembeddings)
    flat = tokens.reshape(-1).astype(np.int64)
    rows = dy.reshape(len(flat), dy.shape[-1])
    np.add.at(grad, flat, rows)  # unbuffered, in (n, t) order: the native kernel's sums
    return _into(dembeddings, grad, dy.dtype)
