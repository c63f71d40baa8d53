-- Pipeline steps are jobs with a parent; a completed step's reuse key lets an identical step
-- of a later pipeline take its outputs instead of running; its lineage (the same step of
-- earlier submissions) says what changed when it does run.

ALTER TABLE jobs ADD COLUMN parent TEXT;
ALTER TABLE jobs ADD COLUMN reuse_key TEXT;
ALTER TABLE jobs ADD COLUMN lineage TEXT;
CREATE INDEX jobs_by_parent ON jobs (parent, created_at);
CREATE INDEX jobs_by_reuse_key ON jobs (reuse_key, status, created_at);
CREATE INDEX jobs_by_lineage ON jobs (lineage, created_at);
