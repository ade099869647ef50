"""Framework and driver integrations for ``escudeiro_pools``.

Each module imports its own dependency and says how to install it if missing:
``integrations.starlette``, ``integrations.fastapi``, ``integrations.asyncpg``,
``integrations.httpx``.
"""
