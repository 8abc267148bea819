-- A document whose passages are still being written, in batches of short
-- transactions: every reader skips it (and its passages) until the last batch
-- clears the mark, together with the base's statistics.
ALTER TABLE documents ADD COLUMN indexing INTEGER NOT NULL DEFAULT 0;
