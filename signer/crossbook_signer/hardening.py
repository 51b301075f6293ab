"""Process hardening once the secrets are loaded: no core dumps, non-dumpable, Landlock.

Landlock (ctypes syscalls; x86_64 and aarch64 share the numbers): a ruleset that *handles* every
file-system right the kernel knows and grants none of them, except ``MAKE_SOCK`` beneath the
directory of the signer's socket, where it may also remove entries (gRPC binds its internal socket
in a private 0700 subdirectory after the restriction; the sockets are removed at exit; see
docs/signer.md), and ``READ_FILE`` on ``/dev/urandom`` (gRPC's abseil reads it). From then on no
other file or directory can be opened, created, removed or executed.
On ABI >= 4 TCP ``bind`` is denied and TCP ``connect`` is allowed only to the KMS port; on
ABI >= 6 signals and abstract Unix sockets are scoped to the signer's own domain.

The restriction applies to the calling thread and every thread it creates afterwards, so it must be
applied before gRPC starts its threads (``grpc.aio.server()``) and before any executor thread.
"""

from __future__ import annotations

import ctypes
import os
import resource

from crossbook import _core
from crossbook.errors import SignerError

_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_DUMPABLE = 4
_PR_GET_DUMPABLE = 3
_ACCESS_FS_READ_FILE = 1 << 2
_ACCESS_FS_REMOVE_DIR = 1 << 4
_ACCESS_FS_REMOVE_FILE = 1 << 5
_ACCESS_FS_MAKE_SOCK = 1 << 9
_ACCESS_NET_BIND_TCP = 1
_ACCESS_NET_CONNECT_TCP = 2
_SCOPE_ABSTRACT_UNIX_SOCKET = 1
_SCOPE_SIGNAL = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _NetPortAttr(ctypes.Structure):
    _fields_ = (("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64))


class HardeningError(SignerError):
    """The process could not be restricted as configured; the signer does not serve."""


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 if Landlock is unavailable."""
    ret = _libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return int(ret) if ret > 0 else 0


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= 1 << 13  # REFER
    if abi >= 3:
        rights |= 1 << 14  # TRUNCATE
    if abi >= 5:
        rights |= 1 << 15  # IOCTL_DEV
    return rights


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise HardeningError(f"landlock: {what} failed: {os.strerror(err)}")
    return ret


def restrict_files(socket_dir: str, kms_port: int | None) -> int:
    """Forbid all file access (but making/removing sockets beneath ``socket_dir``); returns the ABI used."""
    abi = landlock_abi()
    if abi < 1:
        raise HardeningError("landlock is not available on this kernel (need Linux >= 5.13 with landlock enabled)")
    attr = _RulesetAttr(handled_access_fs=_fs_rights(abi))
    size = 8
    if abi >= 4:
        attr.handled_access_net = _ACCESS_NET_BIND_TCP | _ACCESS_NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = 24
    ruleset = _check(
        _libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)),
        "landlock_create_ruleset",
    )
    try:
        dir_fd = os.open(socket_dir, os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY)
        try:
            rights = _ACCESS_FS_MAKE_SOCK | _ACCESS_FS_REMOVE_FILE | _ACCESS_FS_REMOVE_DIR
            rule = _PathBeneathAttr(allowed_access=rights, parent_fd=dir_fd)
            _check(
                _libc.syscall(
                    _SYS_ADD_RULE,
                    ctypes.c_int(ruleset),
                    ctypes.c_int(_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                ),
                "landlock_add_rule(path)",
            )
        finally:
            os.close(dir_fd)
        # gRPC's abseil seeds its RNG by reading /dev/urandom when the server starts: that one
        # device may be read; nothing else can be opened.
        dev_fd = os.open("/dev/urandom", os.O_PATH | os.O_CLOEXEC)
        try:
            rule = _PathBeneathAttr(allowed_access=_ACCESS_FS_READ_FILE, parent_fd=dev_fd)
            _check(
                _libc.syscall(
                    _SYS_ADD_RULE,
                    ctypes.c_int(ruleset),
                    ctypes.c_int(_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                ),
                "landlock_add_rule(/dev/urandom)",
            )
        finally:
            os.close(dev_fd)
        if abi >= 4 and kms_port:
            net = _NetPortAttr(allowed_access=_ACCESS_NET_CONNECT_TCP, port=kms_port)
            _check(
                _libc.syscall(
                    _SYS_ADD_RULE,
                    ctypes.c_int(ruleset),
                    ctypes.c_int(_RULE_NET_PORT),
                    ctypes.byref(net),
                    ctypes.c_uint32(0),
                ),
                "landlock_add_rule(net)",
            )
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise HardeningError(f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")
        _check(_libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def no_core_dumps() -> None:
    """RLIMIT_CORE 0 and PR_SET_DUMPABLE 0 (also blocks ptrace by other uids and /proc/<pid>/mem)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _core.make_non_dumpable()


def is_dumpable() -> bool:
    return bool(_libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0))
