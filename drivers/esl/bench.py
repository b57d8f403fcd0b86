"""Push many labels through the OpenEPaperLink driver and the AP simulator; print the rates.

``python -m drivers.esl.bench --labels 10000 --concurrency 4``

Driver and simulator share one process and one event loop, so the figures are what both
together manage on this machine (a real AP, an ESP32, is far slower: tens of uploads a minute).
Phases: uploads that read their baseline first (2 requests each), all tags check in, one paged
``states()`` sweep confirms delivery, then uploads that reuse the sweep as baseline (1 request).
Like the AP, the simulator closes every connection after its answer; ``--keep-alive`` lifts that
to see what the HTTP stack costs without a connect per request.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from collections.abc import Sequence

from PIL import Image, ImageDraw

from .backend import TagState, Upload, is_delivered
from .openepaperlink import OpenEPaperLinkAP
from .simulator import AccessPointSimulator


def _jpegs(count: int, size: tuple[int, int]) -> list[bytes]:
    images = []
    for i in range(count):
        image = Image.new("RGB", size, "white")
        draw = ImageDraw.Draw(image)
        draw.text((8, 8), f"{i // 100}.{i % 100:02d} EUR", fill="black")
        draw.rectangle((8, 40, 40 + 7 * i % 200, 80), fill="black")
        draw.rectangle((size[0] - 60, 90, size[0] - 8, 120), fill="red")
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        images.append(out.getvalue())
    return images


Job = tuple[str, bytes, TagState | None]  # mac, JPEG, baseline (None: read it first)


async def _upload_all(ap: OpenEPaperLinkAP, jobs: Sequence[Job], workers: int) -> list[Upload]:
    pending = iter(jobs)
    uploads: list[Upload] = []

    async def work() -> None:
        for mac, jpeg, baseline in pending:
            uploads.append(await ap.upload(mac, jpeg, baseline=baseline))

    await asyncio.gather(*(work() for _ in range(workers)))
    return uploads


async def bench(labels: int, concurrency: int, *, keep_alive: bool, variants: int = 32) -> None:
    async with AccessPointSimulator(page_pos_bits=None, keep_alive=keep_alive) as sim:
        macs = sim.add_tags(labels)
        jpegs = _jpegs(variants, (296, 128))
        async with OpenEPaperLinkAP(
            sim.base_url, timeout_s=30, max_concurrent_requests=concurrency
        ) as ap:
            clock = _Clock()
            jobs: list[Job] = [(mac, jpegs[i % variants], None) for i, mac in enumerate(macs)]
            uploads = await _upload_all(ap, jobs, concurrency)
            clock.report("upload, baseline read first (2 requests)", labels)
            transfers = sim.check_in_all()
            clock.report(f"simulated check-ins: {transfers} transfers", labels)
            states = await ap.states()
            delivered = sum(is_delivered(u, states[u.label_id]) for u in uploads)
            clock.report(f"states() sweep: {delivered} delivered", labels)
            jobs = [(mac, jpegs[(i + 1) % variants], states[mac]) for i, mac in enumerate(macs)]
            await _upload_all(ap, jobs, concurrency)
            clock.report("upload, sweep as baseline (1 request)", labels)
            print(f"requests served: {dict(sim.requests)}")


class _Clock:
    """Wall and CPU time since the last ``report``: CPU time says more on a busy machine."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def report(self, what: str, count: int) -> None:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        print(
            f"{what:<42} {wall:7.2f} s {count / wall:8.0f}/s wall"
            f"  {cpu:7.2f} s {count / cpu:8.0f}/s CPU",
            flush=True,
        )
        self.wall, self.cpu = time.perf_counter(), time.process_time()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--keep-alive", action="store_true", help="reuse connections (the AP closes each one)"
    )
    args = parser.parse_args(argv)
    asyncio.run(bench(args.labels, args.concurrency, keep_alive=args.keep_alive))


if __name__ == "__main__":
    main()
