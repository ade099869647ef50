"""A plain asyncio script: `async with pool.lease()` around each unit of work."""

from __future__ import annotations

import asyncio

from escudeiro_pools import AsyncPool


class Connection:
    """A stand-in for an expensive connection."""

    opened = 0

    def __init__(self) -> None:
        Connection.opened += 1
        self.number = Connection.opened

    async def query(self, n: int) -> int:
        await asyncio.sleep(0.001)
        return n * n

    async def close(self) -> None:
        await asyncio.sleep(0)


async def connect() -> Connection:
    await asyncio.sleep(0.01)
    return Connection()


async def close(connection: Connection) -> None:
    await connection.close()


async def main() -> None:
    async with AsyncPool(connect, close, pool_size=4, name="script") as pool:

        async def work(n: int) -> int:
            async with pool.lease() as connection:
                return await connection.query(n)

        results = await asyncio.gather(*(work(n) for n in range(100)))
        print(f"sum of squares: {sum(results)}; connections opened: {Connection.opened}")
        print(pool.stats())


if __name__ == "__main__":
    asyncio.run(main())
