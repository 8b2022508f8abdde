"""General matrix multiply, the BLAS ``GEMM`` contract.

Every dense layer is a matrix product, so this is the one kernel the C++
twin spends most of its effort on.  The reference is a single ``@``.
"""


def gemm(a, b, c, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """Scaled matrix product accumulated into ``c``, in place.

    Formula::

        c = alpha * op(a) @ op(b) + beta * c
        op(a) = a.T if trans_a else a
        op(b) = b.T if trans_b else b

    Shapes:
        a: [M, K], or [K, M] when ``trans_a``
        b: [K, N], or [N, K] when ``trans_b``
        c: [M, N], required, overwritten and returned

    Defaults: ``alpha=1, beta=0, no transposes`` give the plain product
    ``c = a @ b``, as in the reference BLAS ``xGEMM``
    (https://www.netlib.org/lapack/explore-html/ , routine DGEMM).

    When ``beta == 0`` the old contents of ``c`` are never read, so NaN or
    garbage in a freshly allocated ``c`` cannot leak into the result
    (``0 * NaN`` is NaN).  BLAS documents the same rule.  Likewise, when
    ``alpha == 0`` a and b are not read (``c = beta * c``): inf or NaN in them
    does not reach c, as in BLAS and the native kernel.
    """
    if alpha == 0:
        if beta == 0:
            c[...] = 0
        else:
            c[...] = beta * c
        return c
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    product = op_a @ op_b
    if beta == 0:
        c[...] = alpha * product
    else:
        c[...] = alpha * product + beta * c
    return c
