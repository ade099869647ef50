"""Beyond one process: many workers, a pool per process, PgBouncer in front."""
