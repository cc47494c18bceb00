"""A service's settings: the configuration keys it reads, typed and checked once at start.

Each service declares its keys in its `settings.py` as a marshmallow schema built from the
helpers below. `Settings(SchemaClass)` on the service class loads them from nameko's
configuration (the YAML, filled from the environment) when the container starts, and a bad
value stops the start with one message naming every bad key, instead of failing at its
first use hours later. Code then reads `settings.sms_unaccented`, never the raw key.

The kit's own keys (AMQP_URI, STORE_*, OUTBOX_*, AUTH_*) stay with the kit modules that read
them; docs/configuration.md lists every key.
"""
from datetime import timedelta
from types import SimpleNamespace

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load
from marshmallow.validate import Length, Range
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider

from hocvu.store import dependency


class SettingsSchema(Schema):
    """The base of every service's settings schema: keys it does not name are ignored (they
    belong to the kit or to another service sharing the file)."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _unset_means_default(self, config, **kwargs):
        # an environment variable left empty reaches the YAML as null or "": the default applies
        return {key: value for key, value in dict(config).items() if value not in (None, "")}

    @post_load
    def _as_attributes(self, values, **kwargs):
        return SimpleNamespace(**values)


def flag(key: str, default: bool) -> fields.Field:
    """true/false, yes/no, 1/0, on/off."""
    return fields.Boolean(data_key=key, load_default=default)


def whole(key: str, default: int, minimum: int = 1, maximum: int | None = None) -> fields.Field:
    return fields.Integer(data_key=key, load_default=default, strict=False,
                          validate=Range(min=minimum, max=maximum))


def number(key: str, default: float, minimum: float = 0.0,
           maximum: float | None = None) -> fields.Field:
    return fields.Float(data_key=key, load_default=default,
                        validate=Range(min=minimum, max=maximum))


class _Duration(fields.Float):
    def __init__(self, unit: str, **kwargs):
        super().__init__(**kwargs)
        self.unit = unit

    def _deserialize(self, value, attr, data, **kwargs):
        amount = super()._deserialize(value, attr, data, **kwargs)
        return timedelta(**{self.unit: amount})


def duration(key: str, default: float, unit: str = "seconds", minimum: float = 0.0):
    """A number of `unit` (seconds, minutes, days), loaded as a timedelta."""
    return _Duration(unit, data_key=key, load_default=timedelta(**{unit: default}),
                     validate=Range(min=timedelta(**{unit: minimum})))


class _Text(fields.String):
    # nameko reads each value taken from the environment as YAML: BOOTSTRAP_ADMIN_PROVINCE=38
    # arrives as the number 38, and is the text "38" all the same
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, (int, float)):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


def text(key: str, default: str = "", **kwargs) -> fields.Field:
    return _Text(data_key=key, load_default=default, **kwargs)


class _Parsed(_Text):
    def __init__(self, parse, **kwargs):
        super().__init__(**kwargs)
        self.parse = parse

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return self.parse(super()._deserialize(value, attr, data, **kwargs))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def parsed(key: str, parse, default: str | None = None) -> fields.Field:
    """Text made into what the code uses (a key, a schedule, a time zone) by `parse`, whose
    ValueError is the key's problem. Without a default the key must be set."""
    if default is None:
        return _Parsed(parse, data_key=key, required=True,
                       error_messages={"required": "must be set"})
    return _Parsed(parse, data_key=key, load_default=parse(default))


def secret(key: str, min_length: int = 32) -> fields.Field:
    """A key the service cannot run without: required, and long enough to be a secret."""
    return _Text(data_key=key, required=True, validate=Length(min=min_length),
                 error_messages={"required": "must be set"})


def load(schema: type[SettingsSchema], config: dict, service: str = "service") -> SimpleNamespace:
    """The settings `schema` names, read from `config`; ConfigurationError names each bad key."""
    try:
        return schema().load(dict(config))
    except ValidationError as exc:
        problems = "; ".join(f"{key}: {' '.join(_flat(messages))}"
                             for key, messages in sorted(exc.normalized_messages().items()))
        raise ConfigurationError(f"{service}: bad settings ({problems}); "
                                 "see docs/configuration.md") from None


def _flat(messages) -> list[str]:
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flat(value)]
    if isinstance(messages, (list, tuple)):
        return [m for value in messages for m in _flat(value)]
    return [str(messages)]


class Settings(DependencyProvider):
    """`settings = Settings(NotificationsSettings)` on a service class. Loaded as the
    container is made; other providers read it through `settings_of(container)`."""

    def __init__(self, schema: type[SettingsSchema]):
        self.schema = schema
        self._values = None

    def loaded(self) -> SimpleNamespace:
        # a method, not a property: nameko reads every attribute of a provider while it
        # builds the container, before the container is there to read from
        if self._values is None:
            self._values = load(self.schema, self.container.config, self.container.service_name)
        return self._values

    def bind(self, container, attr_name):
        bound = super().bind(container, attr_name)
        # a bad key stops the service as its container is made: before any other provider
        # sets up and connects anywhere (a store it cannot reach would answer in 5 s, and
        # nameko reports the first failure of its providers in no fixed order)
        bound.loaded()
        return bound

    def get_dependency(self, worker_ctx) -> SimpleNamespace:
        return self.loaded()


def settings_of(container, attr_name: str = "settings") -> SimpleNamespace:
    """The settings of the service `container` runs, for another dependency provider."""
    return dependency(container, attr_name).loaded()
