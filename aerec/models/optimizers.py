"""`LazyAdam`: Adam whose row-sparse gradients update only the rows they hold."""
from __future__ import annotations

import keras

__all__ = ["LazyAdam"]


@keras.saving.register_keras_serializable(package="aerec")
class LazyAdam(keras.optimizers.Adam):
    """Adam that applies a row-sparse gradient (``tf.IndexedSlices``: the rows of an item matrix a batch
    gathered) to those rows only: their moments and weights move, the other rows' stay as they are.

    Dense Adam would decay the moments of, and move, every row of a catalogue-sized matrix at every
    step: an item x width read and write per update whatever the batch touched, which dominates an
    update of a sampled softmax. This is the "lazy" Adam of embedding training (as in TensorFlow
    Addons' ``LazyAdam``): the bias correction uses the global step. Dense gradients get Keras' Adam.
    """

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        rows, position = tf.unique(gradient.indices)
        grad = tf.math.unsorted_segment_sum(tf.cast(gradient.values, variable.dtype), position, tf.size(rows))
        step = tf.cast(self.iterations + 1, variable.dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, variable.dtype), tf.cast(self.beta_2, variable.dtype)
        alpha = tf.cast(learning_rate, variable.dtype) * tf.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * grad
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(grad)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
