"""lessons' configuration keys: none of its own. It reads only the kit's (AMQP_URI, STORE_*,
OUTBOX_*, EVENT_BATCH_*, AUTH_*: docs/configuration.md, Every service); the schema is here
so that every service has the same modules and a key lessons comes to need has its place."""
from hocvu.settings import SettingsSchema


class LessonsSettings(SettingsSchema):
    """No key of lessons' own."""
