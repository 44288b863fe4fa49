"""The C library, for the system calls Python's os module lacks (mount, umount2, unshare).

dlopen(NULL) finds libc in the running interpreter: unlike
`ctypes.util.find_library("c")`, it spawns no `ldconfig -p` (about 3 ms each).
"""

from __future__ import annotations

import ctypes

__all__ = ["libc"]

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
libc.unshare.argtypes = (ctypes.c_int,)
