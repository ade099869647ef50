"""Framework and driver integrations, installed as ``escudeiro_pools.integrations``.

Each module imports its own dependency and says how to install it if missing:
``escudeiro_pools.integrations.starlette``, ``.fastapi``, ``.asyncpg``, ``.httpx``,
``.opentelemetry``.
"""
