"""Errors that say what went wrong in the theory's words.

Every user-facing failure of mft_jax is one of these, so the CLI can map them to exit
codes (``ConfigError`` -> 2) and callers can catch the physical answers
(``NonNormalizableError``, ``NoFixedPointError``) apart from programming errors.
"""


class ConfigError(ValueError):
    """Bad input: an unknown key or name, a wrong shape, NaN/inf, an impossible value.

    The message names the offending key or value and what is allowed.
    """


class NonNormalizableError(ArithmeticError):
    """The single-neuron law ``rho(w) ~ exp(-|w|^2/(2 sw2) + c |S(w)|^2)`` has no finite mass.

    A physical answer (docs/theory.md section 3): the coupling ``c |S(w)|^2`` outgrows the prior
    along some direction of w, so the weights of the network run away.
    """


class NoFixedPointError(RuntimeError):
    """The fixed-point iteration did not converge within its budget (raised with ``throw=True``)."""


class NonFiniteError(FloatingPointError):
    """A long run produced NaN or inf; the message names the step and the last good checkpoint."""
