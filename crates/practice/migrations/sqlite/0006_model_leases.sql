-- Slots of a model's `global_max_concurrency`, shared by every replica on this
-- database: a row is one call in flight, held by one replica until it ends or
-- until `expires_at` (milliseconds since the Unix epoch, the database's clock),
-- which the holder pushes forward while the call runs. A replica that dies
-- holding a slot stops pushing, and the slot frees itself.
CREATE TABLE model_leases (
    model       TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (model, slot)
);
