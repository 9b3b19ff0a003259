"""Atomic outputs: write into a temp sibling, then rename, so a crash never leaves half a directory.

Replacing a directory `X` (`atomic_dir`) follows one protocol, whose every step a killed process can stop at:

1. take `X`'s lock, the file `.X.lock` beside `X` (filelock's flock; it holds the holder's pid, and is
   removed when released, so no lock file stays behind): one writer of `X` at a time;
2. finish or roll back what a killed writer left (`recover`: below);
3. write the new content into `.X.tmp-PID` (PID: this process);
4. once it is complete, create the journal `.X.swap-PID`: a kill from here on is finished by the next run;
5. rename `X` to `.X.old-PID`, rename `.X.tmp-PID` to `X`, remove `.X.old-PID`, remove the journal.
   An exception in this process during step 5 (SIGTERM, Ctrl-C) before `X` is the new version puts the old
   one back, and the run fails with `X` as it was; after that, the swap is finished.

`recover(X)`, run under the lock (so every pid in a litter name is of a run that died: a live writer would
hold the lock): a journal with its temp dir finishes the swap (steps 5); a journal whose temp dir is gone
restores `.X.old-PID` if `X` is missing; a temp dir without a journal is unfinished and removed; an
`.X.old-PID` without a journal (left by llmrec before the journal existed, killed between the renames) is
renamed back to `X` if `X` is missing, else removed. Each repair is said in one line. Readers that look for
`X` (train's checkpoints/last) call `recover` first. Kills, not power cuts: nothing is fsynced.

Every JSON file llmrec writes goes through `json_text`: strict JSON (RFC 8259), where a metric that is
undefined (NaN, e.g. the AUC of a one-class split) or infinite is `null`, never Python's bare `NaN`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from llmrec.errors import LlmrecError

_HELD: dict[str, int] = {}  # lock files this process holds -> nesting depth (a run's lock is taken again inside it)


def lock_file(target: Path) -> Path:
    """The lock of `target`: the hidden sibling `.NAME.lock`, present only while a process holds it."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def _key(path: Path) -> str:
    return os.path.join(os.path.realpath(path.parent), path.name)


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


@contextmanager
def hold_lock(target: Path, wait: bool = False, doing: str = "writing"):
    """Hold `target`'s lock (`lock_file`) for the block; taken again in the same process, it nests.

    Held by another process: `wait=False` raises LlmrecError naming its pid (the CLI: one line, exit 2);
    `wait=True` says once whom it waits for, then blocks until the holder ends (a crash releases it)."""
    target = Path(target)
    path = lock_file(target)
    key = _key(path)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    created = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    mine = {}

    def note_holder(fd: int) -> None:  # filelock calls it with the locked file's descriptor
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        mine["stat"] = os.fstat(fd)

    lock = FileLock(path, on_acquired=note_holder)
    said = False
    for attempt in range(100):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(blocking=wait and said)
            break
        except FileNotFoundError:  # the folder went: its creator failed and removed it while we waited
            if attempt == 99:
                raise
        except Timeout:
            if not wait:
                raise LlmrecError(f"{target} is in use by another llmrec run ({_holder(path)}): wait for it to "
                                  "end, or write elsewhere") from None
            print(f"waiting for {_holder(path)}, which is {doing} {target}", flush=True)
            said = True
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        try:  # unlinked while still held: a waiter that opened this file finds it unlinked and opens the new one
            if os.path.samestat(os.stat(path), mine["stat"]):
                path.unlink()
        except (OSError, KeyError):
            pass
        lock.release()
        for folder in created:  # made only for the lock: a refused or failed run leaves no empty folders
            try:
                folder.rmdir()
            except OSError:
                break


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif _exists(path):
        path.unlink()


def _litter(target: Path) -> dict[str, dict[int, Path]]:
    """`.NAME.tmp-PID`, `.NAME.old-PID` and `.NAME.swap-PID` beside `target`, by kind and pid."""
    found: dict[str, dict[int, Path]] = {"tmp": {}, "old": {}, "swap": {}}
    prefix = f".{target.name}."
    if not target.parent.is_dir():
        return found
    for entry in target.parent.iterdir():
        kind, dash, pid = entry.name[len(prefix):].partition("-")
        if entry.name.startswith(prefix) and kind in found and dash and pid.isdigit():
            found[kind][int(pid)] = entry
    return found


def _recover_locked(target: Path) -> list[str]:
    litter = _litter(target)
    said = []
    for pid, journal in sorted(litter["swap"].items()):
        tmp, old = litter["tmp"].pop(pid, None), litter["old"].pop(pid, None)
        if tmp is not None:  # complete but not yet in place: finish the swap
            if _exists(target):
                if old is not None:
                    _remove(old)
                old = target.with_name(f".{target.name}.old-{pid}")
                target.rename(old)
            tmp.rename(target)
            said.append(f"{target}: finished putting the new version in place (its writer, pid {pid}, was "
                        "stopped between the two renames)")
        elif old is not None and not _exists(target):
            old.rename(target)
            old = None
            said.append(f"{target}: restored the previous version (its writer, pid {pid}, was stopped mid-swap)")
        if old is not None:
            _remove(old)
        journal.unlink()
    olds = sorted(litter["old"].items(), key=lambda item: item[1].stat().st_mtime, reverse=True)
    for pid, old in olds:  # no journal: an llmrec without the journal was killed between its renames
        if _exists(target):
            _remove(old)
        else:
            old.rename(target)
            said.append(f"{target}: restored the previous version (its writer, pid {pid}, was stopped between "
                        "the two renames)")
    for tmp in litter["tmp"].values():  # no journal: its writer died before the new version was complete
        _remove(tmp)
    return said


def recover(target: Path) -> None:
    """Finish or roll back a replacement of `target` that a killed process left half done, and remove the temp
    and old dirs of dead writers (the protocol: module docstring). Says each repair in one line. When another
    process holds `target`'s lock it is writing `target` itself: nothing is touched (nor when this process
    holds it: then the litter is its own work in progress)."""
    target = Path(target)
    if _key(lock_file(target)) in _HELD:
        return
    try:
        with hold_lock(target):
            for line in _recover_locked(target):
                print(line, flush=True)
    except LlmrecError:
        return


def _swap(tmp: Path, target: Path) -> None:
    pid = os.getpid()
    journal = target.with_name(f".{target.name}.swap-{pid}")
    journal.write_text(f"{tmp.name} is complete and replaces {target.name}\n")
    old = target.with_name(f".{target.name}.old-{pid}")
    if _exists(target):
        target.rename(old)
    tmp.rename(target)
    _remove(old)
    journal.unlink()


def _undo_swap(tmp: Path, target: Path) -> None:
    """After an exception in `_swap`: the old version back while the new one is not yet in place, else the
    swap finished (its old version removed)."""
    pid = os.getpid()
    old = target.with_name(f".{target.name}.old-{pid}")
    if _exists(tmp):
        if _exists(old) and not _exists(target):
            old.rename(target)
        _remove(tmp)
    else:
        _remove(old)
    target.with_name(f".{target.name}.swap-{pid}").unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: Path, wait: bool = False, doing: str = "writing"):
    """Yield a temp dir; on success it replaces `target` (the old one is kept until the swap is done).

    The whole block holds `target`'s lock (`hold_lock`: another process writing `target` is LlmrecError, or
    with `wait=True` awaited); a half-done swap a killed writer left is finished or rolled back first
    (`recover`). An exception in the block, or in the swap before the new version is in place (SIGTERM and
    Ctrl-C are exceptions under the CLI), removes the temp dir and leaves `target` as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with hold_lock(target, wait=wait, doing=doing):
        for line in _recover_locked(target):
            print(line, flush=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            _swap(tmp, target)
        except BaseException:  # e.g. SIGTERM or Ctrl-C between the renames: this run fails, so `target` stays
            try:
                _undo_swap(tmp, target)
            except Exception:  # noqa: BLE001 - the original error is the one to report; the next run recovers
                pass
            raise


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes, read in chunks (a multi-GB file is never held in memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_record(folder: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """{path relative to `folder` (posix): `file_sha256`} of every file in it, but those named in `exclude`."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): file_sha256(path)
            for path in sorted(p for p in folder.rglob("*") if p.is_file())
            if path.relative_to(folder).as_posix() not in exclude}


def finite_or_none(value):
    """`value` with every NaN/±inf float (also numpy scalars and arrays) inside dicts and lists replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":  # numpy scalar or array
        return finite_or_none(value.tolist())
    return value


def json_text(payload, indent: int | None = 2) -> str:
    """Strict JSON of `payload`: non-finite floats become null; objects json cannot encode become str (paths)."""
    return json.dumps(finite_or_none(payload), indent=indent, default=str, allow_nan=False)


def write_json(path: Path, payload) -> None:
    """Atomically write `payload` as strict JSON (see `json_text`)."""
    write_text(path, json_text(payload))


def write_text(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except BaseException:  # a full disk or a signal mid-write: no half-written temp file left beside `path`
        tmp.unlink(missing_ok=True)
        raise
