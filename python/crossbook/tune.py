"""``crossbook tune``: put the NIC's interrupts and the engine on separate cores.

Seed layout (DESIGN.md §4): NIC IRQs on core 0, the engine on cores 1–3 (clipped to the cores this
machine has). The command always prints what it finds and what it would change; ``--apply`` (as
root) makes the changes and reports each one that the kernel refused (managed IRQs refuse).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Change:
    what: str  # "irq 36 (virtio2-input.0)" or "engine pid 123"
    path: str  # the file that holds it (for IRQs) or "" for the engine
    current: str
    wanted: str

    @property
    def needed(self) -> bool:
        return parse_cpus(self.current) != parse_cpus(self.wanted)


def parse_cpus(text: str) -> set[int]:
    """'0-2,5' → {0, 1, 2, 5}; invalid parts raise ValueError naming them."""
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"not a CPU list: {text!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        out.update(range(lo, hi + 1))
    return out


def format_cpus(cpus: set[int]) -> str:
    ranges: list[str] = []
    for c in sorted(cpus):
        if ranges and ranges[-1].split("-")[-1] == str(c - 1):
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{c}"
        else:
            ranges.append(str(c))
    return ",".join(ranges)


def nic_irqs(iface: str, root: Path = Path("/")) -> dict[int, str]:
    """IRQ number → name for a network interface: its PCI MSI vectors, else /proc/interrupts lines
    naming the interface or its virtio device."""
    dev = root / "sys/class/net" / iface / "device"
    names: list[str] = [iface]
    if dev.exists():
        names.append(dev.resolve().name)  # e.g. virtio2
    irqs: dict[int, str] = {}
    for msi in (dev / "msi_irqs", dev / ".." / "msi_irqs"):
        if msi.is_dir():
            irqs.update({int(p.name): "" for p in msi.iterdir() if p.name.isdigit()})
            break
    table = (root / "proc/interrupts").read_text() if (root / "proc/interrupts").exists() else ""
    for line in table.splitlines()[1:]:
        head, _, rest = line.partition(":")
        if not head.strip().isdigit():
            continue
        n = int(head)
        label = rest.split()[-1] if rest.split() else ""
        if n in irqs or any(label == nm or label.startswith((nm + "-", nm + "_")) for nm in names):
            irqs[n] = label
    return dict(sorted(irqs.items()))


def default_iface(root: Path = Path("/")) -> str:
    """The interface of the default route (first non-loopback one if there is no route table)."""
    route = root / "proc/net/route"
    if route.exists():
        for line in route.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 1 and fields[1] == "00000000":
                return fields[0]
    for p in sorted((root / "sys/class/net").iterdir()):
        if p.name != "lo":
            return p.name
    return "lo"


def plan(iface: str, nic_cores: set[int], engine_cores: set[int], engine_pid: int,
         root: Path = Path("/")) -> list[Change]:
    ncpu = os.cpu_count() or 1
    nic = {c for c in nic_cores if c < ncpu} or {0}
    engine = {c for c in engine_cores if c < ncpu} - nic or {ncpu - 1}
    changes: list[Change] = []
    for n, label in nic_irqs(iface, root).items():
        path = root / "proc/irq" / str(n) / "smp_affinity_list"
        current = path.read_text().strip() if path.exists() else "?"
        changes.append(Change(f"irq {n} ({label or iface})", str(path), current, format_cpus(nic)))
    current_engine = format_cpus(set(os.sched_getaffinity(engine_pid)))
    changes.append(Change(f"engine pid {engine_pid}", "", current_engine, format_cpus(engine)))
    return changes


def apply(changes: list[Change], engine_pid: int) -> list[str]:
    """Make the needed changes; returns one line per change that could not be made, with the reason."""
    failures: list[str] = []
    for ch in changes:
        if not ch.needed:
            continue
        try:
            if ch.path:
                Path(ch.path).write_text(ch.wanted + "\n")
            else:
                os.sched_setaffinity(engine_pid, parse_cpus(ch.wanted))
        except OSError as exc:
            why = "the kernel manages this IRQ's affinity" if exc.errno == 5 else (exc.strerror or str(exc))
            failures.append(f"{ch.what}: not changed ({why})")
    return failures


def run(iface: str | None, nic_cores: str, engine_cores: str, pid: int | None, do_apply: bool) -> int:
    iface = iface or default_iface()
    engine_pid = pid or os.getpid()
    changes = plan(iface, parse_cpus(nic_cores), parse_cpus(engine_cores), engine_pid)
    print(f"interface {iface}: {sum(1 for c in changes if c.path)} IRQ(s); cores available: {os.cpu_count()}")
    for ch in changes:
        mark = "change" if ch.needed else "ok    "
        print(f"  {mark} {ch.what:<40} {ch.current:>8} -> {ch.wanted}")
    todo = [c for c in changes if c.needed]
    if not do_apply:
        print(f"{len(todo)} change(s) needed; run with --apply as root to make them" if todo else "nothing to change")
        return 0
    if todo and any(c.path for c in todo) and os.geteuid() != 0:
        print("--apply needs root to set IRQ affinity")
        return 1
    failures = apply(changes, engine_pid)
    for f in failures:
        print("  " + f)
    print(f"applied {len(todo) - len(failures)} of {len(todo)} change(s)")
    return 0 if not failures else 1
