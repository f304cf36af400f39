"""Dense batches gathered from a sparse matrix inside the ``tf.data`` pipeline."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["dense_row_gather"]


def dense_row_gather(matrix: sp.spmatrix):
    """``gather(index) -> (len(index), n_cols)`` float32 tensor of the given rows of ``matrix`` made dense.

    The matrix is held as two ragged tensors (column ids and values per row); only a batch is ever
    dense, never the whole matrix.
    """
    import tensorflow as tf

    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sort_indices()
    width = matrix.shape[1]
    splits = matrix.indptr.astype(np.int64)
    cols = tf.RaggedTensor.from_row_splits(tf.constant(matrix.indices, tf.int64), splits, validate=False)
    values = tf.RaggedTensor.from_row_splits(tf.constant(matrix.data, tf.float32), splits, validate=False)

    def gather(index):
        picked = tf.gather(cols, index)
        where = tf.stack([picked.value_rowids(), picked.flat_values], axis=1)
        return tf.scatter_nd(where, tf.gather(values, index).flat_values,
                             tf.stack([tf.shape(index, out_type=tf.int64)[0], width]))

    return gather
