"""A data set's published files, downloaded once into a cache: checked, atomic, resumable, locked.

The cache holds ``data_root()/DATASET/FILE``; ``data_root()`` is ``$POLYDL_DATA_DIR``, else
``$XDG_CACHE_HOME/polydl``, else ``~/.cache/polydl``. A missing FILE is fetched from BASE/FILE,
where BASE is, first found: the ``mirror`` argument (``--dataset-param mirror=URL``: the folder
holding that data set's files), ``$POLYDL_DATA_MIRROR/DATASET/`` (a mirror laid out like the
cache), the published address. http, https and file URLs are accepted.

The bytes arrive in ``FILE.part``; an interrupted download is continued with an HTTP Range
request for the bytes after those already there. Only when the whole file's SHA-256 equals the
published one is it renamed to FILE (a mismatch removes the partial file: nothing wrong is kept).
An exclusive ``flock`` on ``FILE.lock`` lets one process download a file while another waits for
it and then reads it. Every file in the cache is opened through :mod:`polydl.fsafe`: a symbolic
link there is refused, never written or read through. The bytes returned are the bytes checked.

``--dataset-param path=DIR`` (``path``) reads the user's own copies from DIR instead, as they are:
they may be a subset or a recompressed copy, so they are not held to the published checksums
(the readers check their format).
"""
from __future__ import annotations

import errno
import hashlib
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import fsafe, memory

try:
    import fcntl
except ImportError:  # pragma: no cover - no flock on this system
    fcntl = None

__all__ = ["DatasetFileError", "RemoteFile", "Source", "DATA_DIR_ENV", "MIRROR_ENV", "data_root", "cache_dir",
           "base_url", "fetch", "sha256", "user_file", "check_user_folder", "Progress"]

DATA_DIR_ENV = "POLYDL_DATA_DIR"
MIRROR_ENV = "POLYDL_DATA_MIRROR"
CHUNK = 1 << 16
TIMEOUT = 60.0          # seconds without an answer before a download is given up (and can be resumed)
_SCHEMES = ("http://", "https://", "file:")


def _network_errors() -> tuple:
    """What a failed download raises (imported on first use: ``import polydl`` stays quick)."""
    import http.client
    import urllib.error

    return urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError


class DatasetFileError(ValueError):
    """A data set's files cannot be had or read: offline, not published there, not matching their
    checksum, refused (a link in the cache), or not in the format of the data set."""


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name, its SHA-256 (hex) and its size in bytes (None: unknown)."""

    name: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class Source:
    """Where a data set's files are published: ``url`` (a folder, ending in '/') and its files;
    ``dataset`` names its folder in the cache and in messages."""

    dataset: str
    url: str
    files: tuple[RemoteFile, ...]

    def names(self) -> list[str]:
        return [f.name for f in self.files]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_root() -> Path:
    """``$POLYDL_DATA_DIR``, else ``$XDG_CACHE_HOME/polydl`` (an absolute one), else ``~/.cache/polydl``."""
    own = os.environ.get(DATA_DIR_ENV)
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "polydl"
    try:
        return Path.home() / ".cache" / "polydl"
    except RuntimeError:
        raise DatasetFileError(f"no home directory to keep downloaded data sets in; set {DATA_DIR_ENV} "
                               "to a folder for them") from None


def cache_dir(dataset: str, create: bool = False) -> Path:
    """The folder of ``dataset``'s files in the cache (created with ``create``)."""
    folder = data_root() / dataset
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise DatasetFileError(f"cannot keep {dataset}'s files in {folder}: it is not a folder; remove it "
                                   f"or set {DATA_DIR_ENV} to another folder") from None
        except OSError as exc:
            raise DatasetFileError(f"cannot create {folder} for {dataset}'s files: {exc.strerror or exc}; set "
                                   f"{DATA_DIR_ENV} to a folder you can write") from None
    return folder


def _folder_url(url, what: str) -> str:
    if not isinstance(url, str) or not url.strip().lower().startswith(_SCHEMES):
        raise DatasetFileError(f"{what} must be an http://, https:// or file: URL of a folder, not {url!r}")
    url = url.strip()
    return url if url.endswith("/") else url + "/"


def base_url(source: Source, mirror=None) -> str:
    """Where ``source``'s files are fetched from (see the module's docstring)."""
    if mirror is not None:
        return _folder_url(mirror, "the dataset parameter mirror")
    env = os.environ.get(MIRROR_ENV)
    if env:
        return _folder_url(env, MIRROR_ENV) + source.dataset + "/"
    return source.url


# ---------------------------------------------------------------------------- the user's files
def user_file(folder, name: str, alternatives=()) -> tuple[str, bytes] | None:
    """(name found, bytes) of the first of ``name``, ``alternatives`` that is a file in the user's
    ``folder`` (links followed: they are the user's own), or None."""
    for candidate in (name, *alternatives):
        path = Path(folder) / candidate
        if not path.exists():
            continue
        try:
            return candidate, fsafe.read_regular(path, follow=True)
        except OSError as exc:
            raise DatasetFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    return None


def check_user_folder(folder) -> Path:
    """The user's folder ``folder`` (``--dataset-param path=DIR``), which must be a folder."""
    if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip():
        raise DatasetFileError(f"the dataset parameter path must name a folder, not {folder!r}")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DatasetFileError(f"the dataset parameter path={folder} is not a folder: give the folder that "
                               "holds the data set's files")
    return path


# ---------------------------------------------------------------------------- the cache
def fetch(source: Source, mirror=None, progress: bool | None = None) -> dict[str, bytes]:
    """The bytes of each of ``source``'s files by name, from the cache, downloaded where missing
    (see the module's docstring). ``progress``: a progress bar on stderr (None: when stderr is a
    terminal). A file that cannot be had is one :class:`DatasetFileError` naming every file of
    the data set and where to put them."""
    folder = cache_dir(source.dataset, create=True)
    base = base_url(source, mirror)
    return {f.name: _ensure(source, f, folder, base, progress) for f in source.files}


def _offline_fix(source: Source, folder: Path) -> str:
    return (f"to train offline, put {', '.join(source.names())} in {folder} (or give --dataset-param "
            f"path=DIR for a folder that has them, or a mirror: --dataset-param mirror=URL or ${MIRROR_ENV})")


def _ensure(source: Source, f: RemoteFile, folder: Path, base: str, progress) -> bytes:
    final = folder / f.name
    data = _cached(final, f)
    if data is not None:
        return data
    with _locked(folder / (f.name + ".lock"), f"{source.dataset}/{f.name}"):
        data = _cached(final, f)  # another process may have downloaded it meanwhile
        if data is None:
            data = _download(source, f, folder, base + f.name, progress)
    return data


def _refused(exc: OSError, path: Path) -> DatasetFileError:
    return DatasetFileError(f"{exc.strerror or exc}" if isinstance(exc, fsafe.NotRegularFile)
                            else f"cannot open {path}: {exc.strerror or exc}")


def _cached(final: Path, f: RemoteFile) -> bytes | None:
    """The bytes of the cached ``final`` where it is there and matches its checksum; None where
    it is missing or (removed then) does not match. A link or other non-file is refused."""
    try:
        fd = fsafe.open_regular(final, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _refused(exc, final) from None
    with os.fdopen(fd, "rb") as fh:
        memory.check_bytes(f"the data file {final}", os.fstat(fh.fileno()).st_size, "free some memory")
        data = fh.read()
    if sha256(data) == f.sha256:
        return data
    sys.stderr.write(f"polydl: {final} does not match its published SHA-256; downloading it again\n")
    fsafe.unlink_inside(final, final.parent)
    return None


@contextmanager
def _locked(path: Path, what: str):
    """An exclusive flock on ``path`` (created, never through a link); a second process waits."""
    try:
        fd = fsafe.open_regular(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _refused(exc, path) from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                sys.stderr.write(f"polydl: waiting for another process downloading {what}\n")
                sys.stderr.flush()
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # lets go of the lock; the lock file stays (removing it would race)


def _download(source: Source, f: RemoteFile, folder: Path, url: str, progress) -> bytes:
    """``url`` into ``FILE.part`` (continued where one is there), checked, renamed to FILE; the
    bytes that were checked."""
    part = folder / (f.name + ".part")
    resumed = _fill(source, f, part, url, progress)
    data = _checked_part(part, f)
    if data is None:
        fsafe.unlink_inside(part, folder)
        if resumed:  # the partial file may have come from another version: once more from nothing
            _fill(source, f, part, url, progress)
            data = _checked_part(part, f)
        if data is None:
            fsafe.unlink_inside(part, folder)
            raise DatasetFileError(f"{url} does not match the published SHA-256 of {source.dataset}'s {f.name} "
                                   f"({f.sha256[:16]}...); it was not kept. Try again later or use another mirror "
                                   f"(--dataset-param mirror=URL or ${MIRROR_ENV})")
    final = folder / f.name
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        st = None
    if st is not None:  # only a link or a non-file can be there now: never replaced silently
        raise DatasetFileError(f"{final} is {fsafe.kind_of(st.st_mode)}, not a regular file; remove it")
    os.replace(part, final)
    return data


def _checked_part(part: Path, f: RemoteFile) -> bytes | None:
    """The bytes of ``part`` where they match ``f``'s SHA-256, else None."""
    try:
        data = fsafe.read_regular(part)
    except OSError as exc:
        raise _refused(exc, part) from None
    return data if sha256(data) == f.sha256 else None


def _fill(source: Source, f: RemoteFile, part: Path, url: str, progress) -> bool:
    """Append to ``part`` the bytes of ``url`` it lacks; True where earlier bytes were kept."""
    try:
        fd = fsafe.open_regular(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise _refused(exc, part) from None
    with os.fdopen(fd, "ab") as fh:
        have = kept = os.fstat(fd).st_size
        if f.size is not None and have > f.size:
            fh.truncate(0)
            have = kept = 0
        if f.size is None or have < f.size:
            try:
                have, kept = _transfer(url, fh, have, f.size, f"{source.dataset}/{f.name}", progress)
            except _network_errors() as exc:
                fh.flush()
                got = os.fstat(fd).st_size
                if not got:
                    fsafe.unlink_inside(part, part.parent)
                note = f" ({got:,} bytes are kept in {part.name}: run again to continue)" if got else ""
                raise DatasetFileError(f"cannot download {source.dataset}'s {f.name} from {url}: {_reason(exc)}"
                                       f"{note}; {_offline_fix(source, part.parent)}") from None
        fh.flush()
        os.fsync(fd)
    if f.size is not None and have < f.size:
        raise DatasetFileError(f"the download of {url} stopped after {have:,} of {f.size:,} bytes; run again to "
                               f"continue it, or {_offline_fix(source, part.parent)}")
    return kept > 0


def _transfer(url: str, fh, have: int, size: int | None, what: str, progress) -> tuple[int, int]:
    """Append the bytes of ``url`` after the first ``have`` (a Range request) to ``fh``: (bytes
    in the file now, bytes kept from before; 0 where the server sent the whole file again)."""
    import http.client
    import urllib.error
    import urllib.request

    headers = {"User-Agent": "polydl", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing after those bytes: the file is complete
            return have, have
        raise
    with resp:
        status = getattr(resp, "status", None) or 200  # file: URLs have no status
        if have and status != 206:  # the server ignored the range: it sends everything
            fh.truncate(0)
            have = 0
        elif have and not str(resp.headers.get("Content-Range", "")).startswith(f"bytes {have}-"):
            raise http.client.HTTPException(f"the server answered the request for bytes {have}- with the range "
                                            f"{resp.headers.get('Content-Range')!r}")
        kept = have
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else size
        bar = Progress(what, total, have, progress)
        try:
            while chunk := resp.read(CHUNK):
                fh.write(chunk)
                have += len(chunk)
                bar.update(have)
        finally:
            bar.close()
    if total is not None and length and have < total:  # the connection closed early
        raise http.client.IncompleteRead(b"", total - have)
    return have, kept


class Progress:
    """A one-line progress bar on stderr: ``what  42%  4.2/9.9 MB``, redrawn at most 10 times a
    second; none where ``enabled`` is False, or None and stderr is not a terminal."""

    def __init__(self, what: str, total: int | None, done: int = 0, enabled: bool | None = None, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.what, self.total, self.enabled, self.shown_at = what, total, enabled, 0.0
        self.drawn = False
        self.update(done)

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (self.drawn and now - self.shown_at < 0.1 and done != self.total):
            return
        self.shown_at, self.drawn = now, True
        if self.total:
            pct = min(100, int(100 * done / self.total))
            line = f"{self.what}  {pct:3d}%  {done / 1e6:.1f}/{self.total / 1e6:.1f} MB"
        else:
            line = f"{self.what}  {done / 1e6:.1f} MB"
        self.stream.write("\r" + line)
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _reason(exc: BaseException) -> str:
    import http.client
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = getattr(exc, "reason", None)
    if isinstance(reason, OSError):
        return reason.strerror or str(reason)
    if reason is not None:
        return str(reason)
    if isinstance(exc, TimeoutError) or getattr(exc, "errno", None) == errno.ETIMEDOUT:
        return f"no answer in {TIMEOUT:g} s"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection closed {exc.expected:,} bytes before the end"
    return str(exc) or type(exc).__name__
