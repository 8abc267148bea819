-- Knowledge indexes are built from the passages' own text, with the same
-- tokenizer that reads queries, so per-term posting rows are no longer kept:
-- an 8 MiB Korean upload wrote 1.9 M of them into a B-tree keyed by term,
-- which took most of a minute under the write lock, and the first search
-- afterwards read them all back (issue 23). Passages and their term counts
-- (the BM25 lengths) stay as they were.
DROP TABLE passage_terms;
