"""The kinds of table autoencoder: what regularises the code, one class each.

``KINDS`` (the names users pass as ``TableAutoencoder(kind=...)``) is built from the registry
here; :class:`~aerec.TableAutoencoder`, :class:`~aerec.models.table.TableNetwork` and the tests
read it from this module. Adding a kind is adding a :class:`TableKind` subclass with
:func:`table_kind` (and, if it has a hyperparameter of its own, that parameter on
:class:`~aerec.models.table.TableNetwork` and :class:`~aerec.TableAutoencoder`).

No Keras at import: the math imports ``keras.ops`` when it runs, so ``import aerec`` stays light.
"""
from __future__ import annotations

__all__ = ["TableKind", "table_kind", "KINDS", "TABLE_KINDS"]


class TableKind:
    """What one kind of table autoencoder changes; the defaults are the plain undercomplete autoencoder.

    A new kind is a subclass decorated with :func:`table_kind`; the hyperparameters it reads are
    attributes of :class:`~aerec.models.table.TableNetwork` (and of :class:`~aerec.TableAutoencoder`, which passes them on).
    """

    #: the name users pass as ``kind=``
    name = ""
    #: in training, hide observed input cells (``corruption``) and learn to fill them; allows ``linear_skip``
    corrupts_input = False

    def code_activation(self, net) -> str | None:
        """Activation of the code layer (None: linear)."""
        return None

    def code_width(self, net) -> int:
        """Units of the code layer (the variational kind needs a mean and a log-variance)."""
        return net.code_dim

    def code(self, net, code, training: bool):
        """The code the decoder reads, from the code layer's output; may add a loss (training only)."""
        return code

    def penalty(self, net, code, encoder_input):
        """A loss on the code in training (a scalar), or None."""
        return None


TABLE_KINDS: dict[str, TableKind] = {}


def table_kind(cls: type) -> type:
    """Class decorator: register a :class:`TableKind` under its ``name``."""
    TABLE_KINDS[cls.name] = cls()
    return cls


@table_kind
class Undercomplete(TableKind):
    name = "undercomplete"


@table_kind
class Sparse(TableKind):
    name = "sparse"

    def code_activation(self, net):
        return "sigmoid" if net.sparsity_penalty == "kl" else "relu"

    def penalty(self, net, code, encoder_input):
        from keras import ops

        if net.sparsity_penalty == "kl":
            rho, rho_hat = net.sparsity_target, ops.clip(ops.mean(code, axis=0), 1e-6, 1.0 - 1e-6)
            kl = rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log((1.0 - rho) / (1.0 - rho_hat))
            return net.sparsity * ops.mean(ops.sum(kl, axis=-1))
        return net.sparsity * ops.mean(ops.sum(ops.abs(code), axis=-1))


@table_kind
class Contractive(TableKind):
    name = "contractive"

    def penalty(self, net, code, encoder_input):
        from keras import ops

        return net.contraction * ops.mean(net._jacobian_norm(encoder_input))


@table_kind
class Denoising(TableKind):
    name = "denoising"
    corrupts_input = True


@table_kind
class Variational(TableKind):
    name = "variational"

    def code_width(self, net):
        return 2 * net.code_dim

    def code(self, net, code, training):
        import keras
        from keras import ops

        mean, log_var = code[..., : net.code_dim], code[..., net.code_dim:]
        if not training:
            return mean
        kl = ops.mean(ops.sum(0.5 * (ops.exp(log_var) + ops.square(mean) - 1.0 - log_var), axis=-1))
        net.add_loss(net.beta * kl)
        return mean + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mean), seed=net.noise_seed)


KINDS = tuple(TABLE_KINDS)
