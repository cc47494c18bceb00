"""Staff passwords as argon2id hashes (argon2-cffi), rehashed at the next sign-in when the
configured parameters change.

Hashing runs in a native thread (eventlet's tpool): it takes tens of milliseconds of CPU and
would otherwise stall every other request.
"""
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int, parallelism: int):
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                     parallelism=parallelism)
        # verified against when the username is unknown, so both cost the same time
        self._decoy = self.hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return tpool.execute(self.hasher.hash, password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return tpool.execute(self.hasher.verify, stored_hash or self._decoy, password) \
                and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self.hasher.check_needs_rehash(stored_hash)
