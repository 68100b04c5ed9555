"""keyrouter lookups in-process, byte-identical to the server's.

``Client`` fetches the server's table (``GET /table``), verifies it by recomputing its
fingerprints with the server's own ranking code (the Rust extension ``keyrouter._native``),
answers lookups from it, and refreshes it in the background. ``Table`` is one immutable table:
from a services file (the parser and errors of ``keyrouter check``), a ``/table`` document or
service descriptions.
"""

import random
import threading
import time
import urllib.error
import urllib.request

from keyrouter._native import (
    DEFAULT_MAX_SERVICES_BYTES,
    ConfigError,
    InvalidLookupError,
    KeyrouterError,
    NotEnoughNodesError,
    Table,
    UnknownServiceError,
    UnverifiedTableError,
)
from keyrouter._native import ClientBase as _ClientBase

__all__ = [
    "Client",
    "Table",
    "KeyrouterError",
    "ConfigError",
    "UnverifiedTableError",
    "UnknownServiceError",
    "InvalidLookupError",
    "NotEnoughNodesError",
    "FetchError",
]

#: The largest ``/table`` document a client reads: the server's own services-file limit
#: (``--max-services-bytes``' default), since the document is about the size of the file.
DEFAULT_MAX_TABLE_BYTES = DEFAULT_MAX_SERVICES_BYTES


class FetchError(KeyrouterError):
    """The server could not be reached, or did not answer ``/table`` with a table."""


class Client(_ClientBase):
    """Lookups from the table of the keyrouter server at ``url``.

    The constructor fetches and verifies the table (raising ``FetchError`` or
    ``UnverifiedTableError`` when it cannot), then a daemon thread refreshes it every
    ``refresh`` seconds, less a random share of up to ``jitter`` of it, so that many clients do
    not poll in step and a new table is served within one interval. A refresh that fails (server
    unreachable, an error status, a table that does not verify) keeps the last good table and
    records why in ``last_error``; the next good one clears it.

    Every lookup reads the current table once, so it never mixes two tables, even when a refresh
    swaps it meanwhile.
    """

    def __init__(self, url, refresh=5.0, *, jitter=0.2, timeout=5.0, max_bytes=DEFAULT_MAX_TABLE_BYTES, start=True):
        if not refresh > 0:
            raise ValueError(f"refresh must be a positive number of seconds, not {refresh!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be from 0 to less than 1, not {jitter!r}")
        self.url = url.rstrip("/")
        self.refresh_interval = float(refresh)
        self.jitter = float(jitter)
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        #: Seconds since the epoch of the last fetch that left the client with a good table
        #: (a new verified table, or the server saying the table is unchanged).
        self.last_refresh = None
        #: Why the last refresh failed (a message), or None after a good one.
        self.last_error = None
        #: How many refreshes ran, good or not.
        self.refreshes = 0
        self._table = None
        self._etag = None
        self._lock = threading.Lock()  # one refresh at a time
        self._stop = threading.Event()
        self._thread = None
        error = self.refresh()
        if error is not None:
            raise error
        if start:
            self._thread = threading.Thread(target=self._run, name=f"keyrouter-refresh {self.url}", daemon=True)
            self._thread.start()

    @property
    def table(self):
        """The current verified ``Table``."""
        return self._table

    @property
    def fingerprint(self):
        """The current table's fingerprint, as the server's ``/table`` shows it."""
        return self._table.fingerprint

    # `lookup(service, key, min=1, max=None, exclude=(), spread=None)` and `lookup_many(service,
    # keys, ...)` are `_ClientBase`'s, in Rust: a call costs no Python frame. They read `_table`
    # (a slot of `_ClientBase`) once, and refuse an `exclude` that is a string.

    def refresh(self):
        """Fetches the table now. Returns None when the client has a good, current table, or
        the error (also recorded in ``last_error``) when it keeps the one it had."""
        with self._lock:
            self.refreshes += 1
            try:
                self._fetch()
            except KeyrouterError as e:
                self.last_error = str(e)
                return e
            self.last_error = None
            self.last_refresh = time.time()
            return None

    def close(self):
        """Stops the background refresh (the table stays usable)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.timeout + 1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        table = self._table.fingerprint if self._table is not None else None
        return f"<keyrouter.Client {self.url} table {table} last_error {self.last_error!r}>"

    def _run(self):
        while not self._stop.wait(self.refresh_interval * (1 - self.jitter * random.random())):
            self.refresh()

    def _fetch(self):
        headers = {"Accept": "application/json"}
        if self._etag is not None and self._table is not None:
            headers["If-None-Match"] = self._etag
        request = urllib.request.Request(self.url + "/table", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read(self.max_bytes + 1)
                etag = response.headers.get("ETag")
        except urllib.error.HTTPError as e:
            if e.code == 304 and self._table is not None:
                return
            raise FetchError(f"{self.url}/table answered {e.code} {e.reason}") from None
        except (OSError, ValueError) as e:
            # URLError, timeouts, resets, a malformed URL.
            raise FetchError(f"cannot fetch {self.url}/table: {e}") from None
        if len(body) > self.max_bytes:
            raise FetchError(f"{self.url}/table is larger than the limit of {self.max_bytes} bytes (max_bytes)")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UnverifiedTableError(f"table from {self.url} does not verify: not UTF-8: {e}") from None
        try:
            table = Table.from_json(text)
        except UnverifiedTableError as e:
            raise UnverifiedTableError(f"table from {self.url} does not verify: {e}") from None
        self._table = table
        self._etag = etag
