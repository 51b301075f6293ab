"""Storage: Redis (books) now; PostgreSQL (asyncpg, numbered migrations) with the mapping work."""
