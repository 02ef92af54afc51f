"""The :class:`Action` base class, and how any action and its params are resolved
into the callables a run uses (spec §1.1)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import attrs
import cattrs
from cattrs.v import format_exception

from . import _validate
from ._exceptions import ActionError, InvalidParams

__all__ = ["Action"]

RunFn = Callable[[Any, Any], Awaitable[Any]]
CompensateFn = Callable[[ActionError, Any, Any], Awaitable[Any]]

_EXPECTED_ACTION = "an async callable fn(params, context), or a trexec.Action instance or subclass"


class Action:
    """Base class of class-based actions::

        class Charge(trexec.Action):
            name = "charge"              # default: the class name
            Params = ChargeParams        # optional attrs class
            async def run(self, params, context): ...
            async def compensate(self, error, params, context): ...  # optional

    ``run(params, context)`` does the work; its return value is the action's result.
    If ``Params`` is set, the ``params`` mapping given to ``run_action`` /
    ``start_action`` is converted to a ``Params`` instance with ``converter``
    (a ``cattrs.Converter``; unknown keys are ignored unless you pass your own
    converter, e.g. ``cattrs.Converter(forbid_extra_keys=True)``) before anything
    runs, and a value that does not fit raises :class:`~trexec.InvalidParams`
    naming the field. A ``Params`` instance is accepted as is.

    ``compensate(error, params, context)``, if overridden, runs once after the
    last attempt failed or timed out (never after a success or a cancellation);
    see :func:`~trexec.run_action`.

    ``run_action``/``start_action`` accept an instance, or the subclass itself,
    which they instantiate with no arguments for that run.
    """

    name: ClassVar[str] = "Action"
    Params: ClassVar[type[Any] | None] = None
    converter: ClassVar[cattrs.Converter] = cattrs.Converter()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        if cls.Params is not None and not attrs.has(cls.Params):
            _validate.fail(f"{cls.__name__}.Params", cls.Params, "an attrs class or None")
        for method in ("run", "compensate"):
            if not inspect.iscoroutinefunction(getattr(cls, method)):
                _validate.fail(f"{cls.__name__}.{method}", getattr(cls, method), "an async def")

    async def run(self, params: Any, context: Any) -> Any:
        """Do the work and return the result. Subclasses must override this."""
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")

    async def compensate(self, error: ActionError, params: Any, context: Any) -> Any:
        """Undo what a failed run left behind; override to enable compensation."""

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} action {self.name!r}>"


def resolve(action: object) -> tuple[RunFn, CompensateFn | None, Action | None]:
    """``(run, compensate or None, Action instance or None)`` for any accepted action.

    Raises :class:`~trexec.InvalidArgument` for anything else (spec §1.1).
    """
    if isinstance(action, Action):
        instance = action
    elif isinstance(action, type) and issubclass(action, Action):
        instance = action()
    elif _validate.is_async_callable(action):  # spec §1.1: a sync fn is no action
        return action, None, None
    else:
        _validate.fail("action", action, _EXPECTED_ACTION)
    cls = type(instance)
    if cls.run is Action.run:
        _validate.fail("action", action, f"{_EXPECTED_ACTION} that defines run()")
    compensate = None if cls.compensate is Action.compensate else instance.compensate
    return instance.run, compensate, instance


def action_name(action: object) -> str:
    """A readable name for errors, reprs and telemetry."""
    if isinstance(action, Action):
        return action.name
    name = getattr(action, "__qualname__", None) or getattr(action, "__name__", None)
    return name if isinstance(name, str) else repr(action)


def convert_params(instance: Action | None, params: object) -> Any:
    """The params ``run`` receives: ``{}`` for ``None``; converted to ``Params`` when the
    action declares it (spec §1.1). Raises :class:`~trexec.InvalidParams`."""
    params_type = None if instance is None else instance.Params
    if params_type is None:
        return {} if params is None else params
    if isinstance(params, params_type):
        return params
    if params is None:
        params = {}
    elif not isinstance(params, Mapping):
        raise InvalidParams(
            f"params={_validate.shown(params)}: expected a mapping or a "
            f"{params_type.__name__} instance"
        )
    try:
        return instance.converter.structure(params, params_type)  # type: ignore[union-attr]
    except cattrs.BaseValidationError as exc:
        problems = structure_problems(exc)
        raise InvalidParams(
            f"invalid params for action {action_name(instance)!r}: {problems}"
        ) from exc
    except (TypeError, ValueError) as exc:  # raised by Params.__init__ itself
        raise InvalidParams(f"invalid params for action {action_name(instance)!r}: {exc}") from exc
    except RecursionError:  # a value nested too deeply for cattrs (or its repr)
        raise InvalidParams(
            f"invalid params for action {action_name(instance)!r}: nested too deeply"
        ) from None


def structure_problems(exc: cattrs.BaseValidationError) -> str:
    """What cattrs found wrong when structuring a dict, one clause per field
    (shared by action params and durable states)."""
    return "; ".join(cattrs.transform_error(exc, format_exception=_describe))


def _describe(exc: BaseException, type_: Any) -> str:
    # An attrs validator's message already names the field and the value
    # ("'currency' must be in ['EUR'] (got 'X')"); cattrs alone would say "invalid value".
    if type_ is None and isinstance(exc, ValueError | TypeError) and exc.args:
        return str(exc.args[0])
    return format_exception(exc, type_)
