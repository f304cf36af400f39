"""Dense batches gathered from a sparse matrix inside the ``tf.data`` pipeline."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["dense_row_gather", "masked_rows_dataset"]


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


def masked_rows_dataset(inputs: sp.spmatrix, targets: sp.spmatrix, batch_size: int, shuffle_seed=None):
    """``tf.data`` batches ``(input rows, (target rows, mask))`` gathered from sparse matrices of the same
    shape; ``mask`` is 1 where ``targets`` has an entry. Only a batch is ever dense.

    ``shuffle_seed`` reshuffles the rows every pass; None keeps them in order.
    """
    import tensorflow as tf

    targets = sp.csr_matrix(targets, dtype=np.float32)
    observed = targets.copy()
    observed.data = np.ones_like(observed.data)
    x, y, mask = dense_row_gather(inputs), dense_row_gather(targets), dense_row_gather(observed)
    n = inputs.shape[0]
    ds = tf.data.Dataset.range(n)
    if shuffle_seed is not None and batch_size < n:
        ds = ds.shuffle(n, seed=int(shuffle_seed), reshuffle_each_iteration=True)
    return ds.batch(batch_size).map(lambda index: (x(index), (y(index), mask(index)))).prefetch(2)
