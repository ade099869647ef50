"""A threaded script: eight threads sharing four connections through a ThreadPool."""

from __future__ import annotations

import sqlite3
import threading

from escudeiro_pools import ThreadPool


def connect() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", check_same_thread=False)


def main() -> None:
    pool = ThreadPool(connect, sqlite3.Connection.close, pool_size=4, name="sqlite")
    totals: list[int] = []
    guard = threading.Lock()

    def worker(n: int) -> None:
        for i in range(50):
            with pool.lease() as conn:
                (value,) = conn.execute("SELECT ? * ?", (n, i)).fetchone()
            with guard:
                totals.append(value)

    with pool:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(f"{len(totals)} queries, total {sum(totals)}; {pool!r}")


if __name__ == "__main__":
    main()
