"""Opening and replacing files safely: the rules every reader and writer of
darknet_rnn's files (.cfg, .weights, .state) follows.

Reading (open_regular, read_regular): only regular files. A FIFO would
block forever, /dev/zero or /dev/urandom would be read without end, a
directory gives a confusing error; each is refused with an error naming the
path and what it is. The size comes from fstat of the opened file (no race
between a check and the open), so callers compare it with what they expect
before reading a byte, and never read more than that.

Writing (atomic_write): the data goes to a temporary file beside the target,
is flushed and fsynced, and is renamed over the target, so the target is
either the old file or the new one, never a mix. A symlink is followed: the
link stays, its target is replaced (atomically, in the target's directory).
FIFOs, devices and directories are refused, not replaced. Temporary files
are named .<name>.<host>.<pid>.<random>.tmp; one left behind by a process
that was killed (kill -9, power loss) is removed by the next save of the
same file once that process is gone. Errors (a missing directory, a full
disk, no permission) name the target path.
"""
import errno
import os
import secrets
import socket
import stat
import time

__all__ = ["open_regular", "read_regular", "atomic_write", "describe_mode", "temp_prefix"]


def describe_mode(mode):
    """'a FIFO', 'a character device', ... for a st_mode that is not a
    regular file."""
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return what
    return "not a regular file"


def open_regular(path, what, error=ValueError):
    """Open `path` for binary reading if it is a regular file; returns
    (file object, size in bytes). `what` ('weights file', ...) and the
    exception class `error` are used in the message for anything else.
    FileNotFoundError keeps its type, with a message naming `what`."""
    p = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(p, flags)      # O_NONBLOCK: opening a FIFO does not wait for a writer
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{what} not found", p) from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, not a {what}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{p}: is {describe_mode(st.st_mode)}, not a {what}; only regular "
                        "files are read")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f, int(st.st_size)


def read_regular(path, what, limit, error=ValueError):
    """The bytes of a regular file of at most `limit` bytes (else `error`
    naming both sizes, before reading)."""
    f, size = open_regular(path, what, error)
    with f:
        if size > limit:
            raise error(f"{os.fspath(path)}: {size} bytes is too large for a {what} "
                        f"(at most {limit} bytes are read)")
        data = f.read(limit + 1)
    if len(data) > limit:           # it grew while we read
        raise error(f"{os.fspath(path)}: the {what} grew beyond {limit} bytes while read")
    return data


# --------------------------------------------------------------------------
# writing

_HOST = "".join(c if c.isalnum() or c == "-" else "_" for c in socket.gethostname())[:40]
_LEGACY_AGE = 600.0      # seconds: temporary files of older versions (no pid) count as stale
_OTHER_HOST_AGE = 86400.0   # ... and those of other hosts sharing the directory


def temp_prefix(name):
    """The prefix of the temporary files a save of file `name` creates."""
    return f".{name}."


def _resolve(p):
    """The path to replace for target p: p itself, or the file a symlink
    (chain) points to. Refuses targets that are not regular files."""
    target = p
    if os.path.islink(p):
        target = os.path.realpath(p)
        if os.path.islink(target):
            raise OSError(errno.ELOOP, f"cannot save {p}: too many levels of symbolic links",
                          p)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    except OSError as e:
        raise OSError(e.errno, f"cannot save {p}: {e.strerror}", p) from None
    if not stat.S_ISREG(st.st_mode):
        shown = p if target == p else f"{p} (-> {target})"
        raise OSError(errno.EINVAL, f"cannot save {shown}: it is {describe_mode(st.st_mode)}, "
                      "not a regular file; it is left alone", p)
    return target


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _older(path, now, age):
    try:
        return now - os.lstat(path).st_mtime > age
    except OSError:
        return False


def clean_stale(directory, name, now=None):
    """Remove temporary files of `name` in `directory` left by saves that
    cannot finish any more: this host's processes that are gone; files of
    older versions (no pid in the name) untouched for 10 minutes; other
    hosts' untouched for a day. Returns the paths removed."""
    prefix = temp_prefix(name)
    now = time.time() if now is None else now
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        parts = entry[len(prefix):-len(".tmp")].split(".")
        path = os.path.join(directory, entry)
        if len(parts) == 3 and parts[1].isdigit() and len(parts[2]) == 8:
            if parts[0] == _HOST:
                stale = not _pid_alive(int(parts[1]))
            else:                   # another host's save: only when long abandoned
                stale = _older(path, now, _OTHER_HOST_AGE)
        elif len(parts) == 1 and len(parts[0]) == 8:      # tempfile.mkstemp's name
            stale = _older(path, now, _LEGACY_AGE)
        else:
            continue                # not ours (e.g. the temporary of "NAME.other")
        if stale:
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    return removed


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


def _fail(e, p):
    """An OSError like e (same errno, so the same subclass) whose message
    names the target path."""
    why = e.strerror or str(e)
    if e.errno in _FULL:
        why += "; the previous file, if any, is unchanged"
    return OSError(e.errno, f"cannot save {p}: {why}", p)


def _ours(e):
    return isinstance(e, OSError) and str(e.strerror or "").startswith("cannot save ")


def atomic_write(path, write):
    """Write a file atomically: write(f) fills a temporary file in the
    target's directory, which is flushed, fsynced and renamed over the
    target (see the module docstring for symlinks, refusals, stale files).
    On any error the temporary file is removed, the target is untouched and
    the OSError names the target."""
    p = os.fspath(path)
    target = _resolve(p)
    d = os.path.dirname(os.path.abspath(target))
    name = os.path.basename(target)
    if not os.path.isdir(d):
        raise FileNotFoundError(errno.ENOENT, f"cannot save {p}: the directory {d} does not "
                                "exist", p)
    clean_stale(d, name)
    tmp = os.path.join(d, f"{temp_prefix(name)}{_HOST}.{os.getpid()}."
                          f"{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
    except OSError as e:
        raise _fail(e, p) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(target))
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and not _ours(e):
            raise _fail(e, p) from None
        raise
    try:   # make the rename durable (best effort; not possible on every OS)
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _new_file_mode(target):
    """The existing target's mode, else what open() would give (0o666 less
    the umask)."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        pass
    return 0o666 & ~_umask()


def _umask():
    try:                     # Linux: read it without changing it (thread-safe)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask
