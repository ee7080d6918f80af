# -*- test-case-name: tests.test_allocator -*-
"""
Which C{malloc} the process runs on.

librdkafka allocates every record on the thread that produces it and, once
Kafka has it, frees it on a broker thread.  glibc's allocator handles that
hand-over poorly (its per-thread caches never refill the producing thread,
so most records take the arena's lock and its consolidation); mimalloc
frees across threads without either, and cuts the producing thread's CPU
per record by a fifth to a third (C{docs/architecture.md}, "The allocator").
librdkafka has no allocator hook and binds C{malloc} from the process's
global scope, so the only way in is C{LD_PRELOAD} at the process's start:
the gateway's launchers (C{scripts/run}, the container image, the systemd
unit) preload L{PRELOAD}, and the producer's start line names the library
C{malloc} came from, so an operator sees which one runs.
"""

import ctypes
import os

__all__ = ["PRELOAD", "mallocLibrary"]

#: What the launchers preload (Debian and Ubuntu: package C{libmimalloc2.0}).
PRELOAD = "libmimalloc.so.2"


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def mallocLibrary():
    """
    :return: the file name of the shared library the process's C{malloc}
        resolves to (the one librdkafka calls), e.g. C{"libc.so.6"} or
        C{"libmimalloc.so.2"}; C{"unknown"} where C{dladdr} cannot say.
    :rtype: L{str}
    """
    try:
        process = ctypes.CDLL(None)
        dladdr = process.dladdr
        malloc = ctypes.cast(process.malloc, ctypes.c_void_p)
    except (OSError, AttributeError):
        return "unknown"
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    info = _DlInfo()
    if not dladdr(malloc, ctypes.byref(info)) or not info.dli_fname:
        return "unknown"
    return os.path.basename(os.fsdecode(info.dli_fname))
