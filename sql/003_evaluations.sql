-- dbml registry, schema version 3: stored EVALUATE runs, so "how was this version
-- evaluated, on which data, and how did it score" is a query.

CREATE SEQUENCE dbml.evaluation_run_id;

CREATE TABLE dbml.evaluation_runs (
    run_id     BIGINT    PRIMARY KEY DEFAULT nextval('dbml.evaluation_run_id'),
    model      VARCHAR   NOT NULL,
    version    INTEGER   NOT NULL,
    run_at     TIMESTAMP NOT NULL,   -- UTC
    who        VARCHAR   NOT NULL,
    source_sql VARCHAR   NOT NULL,   -- the ON (query)
    task       VARCHAR   NOT NULL,
    options    JSON      NOT NULL,   -- the WITH options given
    rows       BIGINT,               -- rows evaluated, all groups together
    metrics    JSON      NOT NULL,   -- the rows EVALUATE returned, as a list of objects
    curves     JSON                  -- the pictures' data over the whole source (dbml.curves); NULL with by or confusion
);
