-- The callback sync between nodes reads only what changed since its last
-- round (`updated_at`) and the leases that ran out (`lease_until`), not
-- every pending callback: with 10,000 pending, reading them all every few
-- seconds held up agent offers by tens of milliseconds on PostgreSQL.
CREATE INDEX IF NOT EXISTS callbacks_updated_at ON callbacks(updated_at);
CREATE INDEX IF NOT EXISTS callbacks_lease_until ON callbacks(lease_until);
