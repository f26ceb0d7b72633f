"""A TCP fault proxy for failure tests: forwards 127.0.0.1:<port> to 127.0.0.1:<target> and,
on demand, adds latency, stalls (a black hole: connections stay open, nothing moves), cuts
every open connection, or refuses new ones (a dead server).

    async with FaultProxy(redis_port) as proxy:   # point the client at proxy.port
        proxy.latency_s = 0.5                       # every chunk, each way, arrives 500 ms late
        proxy.blackhole()                           # bytes stop flowing; sockets stay open
        proxy.kill()                                # cut open connections, refuse new ones
        proxy.heal()                                # back to a plain pipe

    python -m loadtest.faultproxy --target 6380 --port 7380 --latency-ms 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

CHUNK = 64 * 1024


class FaultProxy:
    def __init__(self, target_port: int, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = port
        self.latency_s = 0.0
        self.refusing = False
        self.accepted = 0  # connections accepted since start, refused ones included
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # -- faults ------------------------------------------------------------------------
    def blackhole(self) -> None:
        """Stop moving bytes. Open connections and new ones stay up but silent, as with a
        hung server or a partition: clients only notice through their own timeouts."""
        self._flowing.clear()

    def cut(self) -> None:
        """Abort every open connection at once (both sides see a reset)."""
        for w in list(self._writers):
            w.transport.abort()

    def refuse(self, on: bool = True) -> None:
        """New connections are accepted and aborted at once: nothing answers there."""
        self.refusing = on

    def kill(self) -> None:
        """A dead server: open connections cut, new ones refused."""
        self.refuse()
        self.cut()

    def heal(self) -> None:
        """A plain pipe again; stalled bytes flow on."""
        self.latency_s = 0.0
        self.refusing = False
        self._flowing.set()

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # -- plumbing ----------------------------------------------------------------------
    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.refusing:
            writer.transport.abort()
            return
        # Tracked from here on, before any await: a cut() that lands before the forwarding
        # task first runs must still reach this connection.
        self._writers.add(writer)
        # A task of our own, not asyncio's handler task: closing cancels it, and Python
        # 3.11 logs a spurious error when the server's own handler task is cancelled.
        task = asyncio.create_task(self._forward(reader, writer))
        self._conns.add(task)
        task.add_done_callback(self._conns.discard)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                up_reader, upstream = await asyncio.open_connection(self.host, self.target_port)
            except OSError:
                return
            self._writers.add(upstream)
            if writer.transport.is_closing():
                return  # cut (or refused) while the upstream connection was being opened
            await asyncio.gather(self._pipe(reader, upstream), self._pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Copy one direction. Latency is a delay per chunk, not a bandwidth cap: chunks
        queue with their arrival time and each leaves `latency_s` after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                arrived, data = await queue.get()
                if not data:
                    break
                await self._flowing.wait()
                delay = arrived + self.latency_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
            dst.transport.abort()  # one side closed: close the other, as a dead peer would

        sender = asyncio.create_task(send())
        try:
            while True:
                await self._flowing.wait()  # a black hole stops reading: TCP backs up
                data = await src.read(CHUNK)
                queue.put_nowait((time.monotonic(), data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender


async def _main(args: argparse.Namespace) -> None:
    async with FaultProxy(args.target, args.port) as proxy:
        proxy.latency_s = args.latency_ms / 1000
        print(f"proxy 127.0.0.1:{proxy.port} -> 127.0.0.1:{args.target}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.faultproxy", description=__doc__)
    p.add_argument("--target", type=int, required=True, help="port to forward to")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: free)")
    p.add_argument("--latency-ms", type=float, default=0.0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    main()
