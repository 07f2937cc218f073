"""The exceptions deepviz raises.

Each subclasses the built-in a caller would naturally catch, so
``except ValueError`` still works for a bad argument and ``except LookupError``
for a missing run, step or layer.
"""


class DeepvizError(Exception):
    """Base class of every deepviz error."""


class ConfigurationError(DeepvizError, ValueError):
    """A bad argument or setting, found before any work is done."""


class NotFoundError(DeepvizError, LookupError):
    """A run, step, layer, probe or derived result that does not exist."""


class SchemaVersionError(DeepvizError, RuntimeError):
    """The database was written by a newer deepviz than this one."""


class CorruptDataError(DeepvizError, OSError):
    """A file of the database cannot be read; the message names it."""


class DatasetError(DeepvizError, ValueError):
    """A dataset file is missing, truncated or not in the expected format."""


class QueryError(DeepvizError, ValueError):
    """A SQL query was refused or failed."""


class UntrustedDataError(ConfigurationError):
    """A value in a stats db that deepviz refuses to act on, e.g. a model class that is not an nn.Module."""


class RunLockedError(DeepvizError, RuntimeError):
    """Another process is writing the same run; the message names it and how to break a stale lock."""
