"""EASE (Steck, 2019): a closed-form item-item linear autoencoder. NumPy/SciPy only."""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ..exceptions import CatalogueTooLargeError
from ..utils import available_memory

__all__ = ["ease_weights", "ease_memory_bytes"]


def ease_memory_bytes(n_items: int) -> int:
    """Peak memory of the solve: the float64 Gram matrix, its inverse and the float32 weights."""
    return n_items * n_items * (8 + 8 + 4)


def ease_weights(X: sp.csr_matrix, l2: float, max_memory: int | None = None) -> np.ndarray:
    """The EASE item-item matrix ``B`` (zero diagonal) for interactions ``X`` (users x items).

    ``B = I - P diagMat(1 / diag(P))`` with ``P = (XᵀX + λI)⁻¹``; the score of item j for a user
    with history x is ``(x B)_j``.

    Raises
    ------
    CatalogueTooLargeError
        When the dense item x item matrices would not fit in ``max_memory`` bytes (default:
        80% of the memory available now).
    """
    n_items = X.shape[1]
    need = ease_memory_bytes(n_items)
    budget = int(0.8 * available_memory()) if max_memory is None else int(max_memory)
    if need > budget:
        raise CatalogueTooLargeError(
            f"EASE needs dense {n_items} x {n_items} item-item matrices, about {need / 2**30:.2f} GiB "
            f"({need:,} bytes), but only {budget / 2**30:.2f} GiB ({budget:,} bytes) may be used; "
            f"reduce the catalogue (e.g. drop rare items) or use a neural model such as MultVAE"
        )
    gram = (X.T @ X).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    # G is symmetric positive definite, so a Cholesky-based inverse is both stable and fast
    P = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram, overwrite_a=True), np.eye(n_items), overwrite_b=True)
    B = P / (-np.diag(P))
    B[np.diag_indices_from(B)] = 0.0
    return np.ascontiguousarray(B, dtype=np.float32)  # the solve returns Fortran order; rows are read per user
