-- Instances poll for recently ended sessions to keep their validation caches honest.
CREATE INDEX sessions_end_time ON sessions (end_time) WHERE end_time IS NOT NULL;
