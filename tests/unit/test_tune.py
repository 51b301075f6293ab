"""`crossbook tune` against a sysfs/procfs laid out in a temp dir (the real files need root)."""

from __future__ import annotations

import os
from pathlib import Path

from crossbook.tune import apply, format_cpus, nic_irqs, parse_cpus, plan

INTERRUPTS = """           CPU0       CPU1
 24:          1          0  IO-APIC   5-edge      ACPI:Ged
 37:          0          0 PCI-MSIX-0000:00:03.0   0-edge      virtio2-config
 38:       1200       3400 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0
 39:          5          9 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0
 40:          0          0 PCI-MSIX-0000:00:04.0   0-edge      virtio3-input.0
"""


def fake_root(tmp: Path) -> Path:
    (tmp / "sys/devices/virtio2").mkdir(parents=True)
    (tmp / "sys/class/net/eth9").mkdir(parents=True)
    (tmp / "sys/class/net/eth9/device").symlink_to(tmp / "sys/devices/virtio2")
    (tmp / "proc").mkdir()
    (tmp / "proc/interrupts").write_text(INTERRUPTS)
    for n in (24, 37, 38, 39, 40):
        (tmp / f"proc/irq/{n}").mkdir(parents=True)
        (tmp / f"proc/irq/{n}/smp_affinity_list").write_text("0-1\n")
    return tmp


def test_cpu_lists_round_trip() -> None:
    assert parse_cpus("0-2,5") == {0, 1, 2, 5}
    assert format_cpus({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"


def test_finds_only_the_interfaces_irqs_and_applies_them(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    assert nic_irqs("eth9", root) == {37: "virtio2-config", 38: "virtio2-input.0", 39: "virtio2-output.0"}
    changes = plan("eth9", {0}, {1, 2, 3}, os.getpid(), root)
    irq_changes = [c for c in changes if c.path]
    assert [c.wanted for c in irq_changes] == ["0", "0", "0"] and all(c.needed for c in irq_changes)
    assert apply(irq_changes, os.getpid()) == []
    assert (root / "proc/irq/38/smp_affinity_list").read_text().strip() == "0"
    assert (root / "proc/irq/40/smp_affinity_list").read_text().strip() == "0-1"  # another device: untouched
    # a second look finds nothing left to do for the IRQs
    assert not any(c.needed for c in plan("eth9", {0}, {1}, os.getpid(), root) if c.path)
