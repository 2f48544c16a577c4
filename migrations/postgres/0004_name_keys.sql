-- Names are keyed by their Unicode NFKC_Casefold form (compatibility normalisation, full case
-- folding, default-ignorable characters dropped) instead of their lower case, so that names a
-- person cannot tell apart are one name. Only the service computes keys, so this migration marks
-- that every stored key must be computed again: the service does it when it next starts, in one
-- transaction, and then removes the mark. Should two names now share a key, it refuses to start
-- and says which, changing nothing.
CREATE TABLE pending_rekeys (
    key_function TEXT PRIMARY KEY NOT NULL
);
INSERT INTO pending_rekeys (key_function) VALUES ('nfkc_casefold');
