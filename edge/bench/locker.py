"""``edge bench locker``: deposit+pickup cycles through the whole controller and the real
lock-board protocol, against simulated boards on pseudo-terminals with instant doors.

Figures: controller overhead per unlock (service call received → unlock frame arriving at the
board), cycles per second and durable (fsync'ed) transactions per second, as medians of rounds.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from edge.app import EdgeApp
from edge.bench.report import emit, machine, median, percentiles, progress
from edge.demo.site import COURIER_ID, SimulatedSite
from edge.logs import configure_logging

ROUNDS = 5


async def run_locker_bench(cycles: int) -> int:
    configure_logging("WARNING", "console")
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        site = SimulatedSite(Path(tmp), locks_per_board=24)
        await site.start()
        app = EdgeApp(site.config())
        try:
            await app.start(serve_http=False)
            await app.wait_checked()
            result = await _cycles(app, site, cycles)
        finally:
            await app.stop()
            await site.stop()
    print(
        f"locker: {cycles} deposit+pickup cycles, "
        f"unlock overhead p50 {result['unlock_overhead_ms']['p50']} ms "
        f"p99 {result['unlock_overhead_ms']['p99']} ms, "
        f"{result['cycles_per_s']} cycles/s, {result['durable_tx_per_s']} durable tx/s"
    )
    emit(result)
    return 0


async def _cycles(app: EdgeApp, site: SimulatedSite, cycles: int) -> dict[str, Any]:
    assert site.boards is not None
    frame_arrived: list[float] = []
    site.boards.add_unlock_listener(lambda _a, _l: frame_arrived.append(time.perf_counter()))
    lockers = app.lockers
    sizes = ["S", "M", "L"]
    overheads: list[float] = []
    cycle_rates: list[float] = []
    tx_rates: list[float] = []
    per_round = max(cycles // ROUNDS, 1)
    done = 0
    while done < cycles:
        batch = min(per_round, cycles - done)
        commits_before, started = app.db.commits, time.perf_counter()
        for i in range(batch):
            code = f"BENCH{done + i:06d}"
            received = time.perf_counter()
            door = await lockers.start_deposit(COURIER_ID, code, sizes[i % 3])
            overheads.append((frame_arrived[-1] - received) * 1000)
            site.close_door(door.compartment_id)
            view = await lockers.wait_operation(door.operation_id, wait_s=10)
            assert view.pickup_code is not None, f"deposit {code} did not complete: {view}"
            received = time.perf_counter()
            pickup = await lockers.start_pickup("bench", view.pickup_code)
            overheads.append((frame_arrived[-1] - received) * 1000)
            site.close_door(pickup.compartment_id)
            closed = await lockers.wait_operation(pickup.operation_id, wait_s=10)
            assert closed.state == "completed", f"pickup of {code} did not complete: {closed}"
        elapsed = time.perf_counter() - started
        cycle_rates.append(batch / elapsed)
        tx_rates.append((app.db.commits - commits_before) / elapsed)
        done += batch
        progress(done, cycles, "locker cycles")
    return {
        "bench": "locker",
        "machine": machine(),
        "cycles": cycles,
        "rounds": len(cycle_rates),
        "unlock_overhead_ms": percentiles(overheads),
        "unlock_overhead_measured": "service call received -> unlock frame read by the board",
        "cycles_per_s": median(cycle_rates),
        "durable_tx_per_s": median(tx_rates),
        "sqlite": {"journal_mode": "wal", "synchronous": "full"},
    }
