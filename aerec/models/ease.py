"""EASE (Steck, 2019): a closed-form item-item linear autoencoder.

The dense item x item solve runs in TensorFlow (Eigen and oneDNN kernels), not in NumPy/SciPy's
LAPACK. The OpenBLAS builds shipped in the NumPy and SciPy wheels crash (SIGSEGV in the
multi-threaded Cholesky, ``dpotrf`` -> ``dsyrk`` -> ``dgemm_oncopy``) with their AVX-512
("SkylakeX") kernels above a size threshold: from 15,501 items up for ``scipy.linalg.cho_factor``
on our test machine (issue #23; ``benchmarks/results/ease_crash.md``). TensorFlow's solvers do
not go through OpenBLAS at all, whatever the processor. TensorFlow is imported when a solve runs, so
``import aerec`` stays light.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..exceptions import CatalogueTooLargeError, InvalidParameterError
from ..utils import available_memory

__all__ = ["ease_weights", "ease_memory_bytes"]


def ease_memory_bytes(n_items: int) -> int:
    """Peak memory of the solve: about five float32 item x item matrices (the Gram matrix and its
    TensorFlow copy, the Cholesky factor ``L``, ``L⁻¹`` with the identity it is solved from, and
    ``P``; the weights ``B`` are written over ``P``). The float64 retry (see :func:`ease_weights`)
    needs twice as much."""
    return n_items * n_items * 4 * 5


def _gram(X: sp.csr_matrix, l2: float, dtype) -> np.ndarray:
    """``XᵀX + λI`` as a dense C-ordered array of ``dtype`` (never a dense float64 copy for float32)."""
    gram = (X.T @ X).astype(dtype, copy=False).toarray()
    gram[np.diag_indices_from(gram)] += l2
    return gram


def _inverse(gram: np.ndarray):
    """``gram⁻¹`` for a symmetric positive definite ``gram``, via Cholesky in TensorFlow:
    ``G = L Lᵀ``, ``L⁻¹`` by a triangular solve, ``G⁻¹ = L⁻ᵀ L⁻¹`` by a matrix product.

    Returns the inverse as a NumPy array of gram's dtype, or None when the factorisation failed
    (TensorFlow's CPU Cholesky returns NaNs instead of raising when a pivot is not positive).
    Each n x n intermediate is dropped as soon as the next exists, to keep the peak low.
    """
    import tensorflow as tf

    n = gram.shape[0]
    G = tf.convert_to_tensor(gram)
    L = tf.linalg.cholesky(G)
    del G
    diagonal = tf.linalg.diag_part(L)
    if not bool(tf.reduce_all(tf.math.is_finite(diagonal) & (diagonal > 0))):
        return None
    L_inv = tf.linalg.triangular_solve(L, tf.eye(n, dtype=L.dtype), lower=True)
    del L
    P = tf.matmul(L_inv, L_inv, transpose_a=True)
    del L_inv
    return P.numpy()  # a writable copy of its own; the tensor is freed on return


def ease_weights(X: sp.csr_matrix, l2: float, max_memory: int | None = None) -> np.ndarray:
    """The EASE item-item matrix ``B`` (zero diagonal, float32) for interactions ``X`` (users x items).

    ``B = I - P diagMat(1 / diag(P))`` with ``P = (XᵀX + λI)⁻¹``; the score of item j for a user
    with history x is ``(x B)_j``.

    The inverse is computed in TensorFlow in float32 (Cholesky factor, triangular solve, matrix
    product): on MovieLens-100K (protocol A1) the NDCG@100 is the same to 6 decimals as a float64
    solve, and ``B`` differs by about 5e-7. When float32 is not precise enough for the data (a very
    small ``l2``: the Gram matrix is not numerically positive definite in float32), the solve is
    redone in float64, which needs twice the memory.

    Raises
    ------
    CatalogueTooLargeError
        When the dense item x item matrices would not fit in ``max_memory`` bytes (default:
        80% of the memory available now).
    InvalidParameterError
        When ``l2`` is so small that ``XᵀX + λI`` is not numerically positive definite (in float32,
        and float64 either fails too or does not fit in the memory allowed).
    """
    n_items = X.shape[1]
    need = ease_memory_bytes(n_items)
    budget = int(0.8 * available_memory()) if max_memory is None else int(max_memory)
    if need > budget:
        raise CatalogueTooLargeError(
            f"EASE needs dense {n_items} x {n_items} item-item matrices, about {need / 2**30:.2f} GiB "
            f"({need:,} bytes), but only {budget / 2**30:.2f} GiB ({budget:,} bytes) may be used: the "
            f"catalogue is too large for EASE's dense item x item matrix. Use aerec.ELSA, the same shallow "
            f"autoencoder with a low-rank item matrix ({n_items} x code_dim floats), or reduce the catalogue "
            f"(e.g. drop rare items)"
        )
    P = _inverse(_gram(X, l2, np.float32))
    if P is None:
        if 2 * need > budget:
            raise InvalidParameterError(
                f"l2={l2} is too small for this data: XᵀX + λI is not positive definite in float32, and "
                f"the float64 solve needs about {2 * need / 2**30:.2f} GiB of the {budget / 2**30:.2f} GiB "
                f"that may be used; use a larger l2"
            )
        P = _inverse(_gram(X, l2, np.float64))
        if P is None:
            raise InvalidParameterError(
                f"l2={l2} is too small for this data: XᵀX + λI is not positive definite even in "
                f"float64; use a larger l2"
            )
    P /= -np.diag(P)  # column j over -P_jj: B = I - P diagMat(1 / diag(P)) off the diagonal
    P[np.diag_indices_from(P)] = 0.0
    return np.ascontiguousarray(P, dtype=np.float32)  # float32 already: no copy; rows are read per user
