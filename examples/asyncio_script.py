"""A plain asyncio script: `async with pool.lease()` around each unit of work."""

from __future__ import annotations

import asyncio
import itertools

from escudeiro_pools import AsyncPool


class Connection:
    """A stand-in for an expensive connection."""

    def __init__(self, number: int) -> None:
        self.number = number

    async def query(self, n: int) -> int:
        await asyncio.sleep(0.001)
        return n * n

    async def close(self) -> None:
        await asyncio.sleep(0)


async def main() -> None:
    numbers = itertools.count(1)

    async def connect() -> Connection:
        await asyncio.sleep(0.01)
        return Connection(next(numbers))

    async def close(connection: Connection) -> None:
        await connection.close()

    async with AsyncPool(connect, close, pool_size=4, name="script") as pool:

        async def work(n: int) -> int:
            async with pool.lease() as connection:
                return await connection.query(n)

        results = await asyncio.gather(*(work(n) for n in range(100)))
        print(f"sum of squares: {sum(results)}; connections opened: {pool.stats().created}")
        print(pool.stats())


if __name__ == "__main__":
    asyncio.run(main())
