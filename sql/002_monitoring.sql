-- dbml registry, schema version 2: stored MONITOR runs, so drift over time is a query.

CREATE SEQUENCE dbml.monitor_run_id;

CREATE TABLE dbml.monitor_runs (
    run_id     BIGINT    PRIMARY KEY DEFAULT nextval('dbml.monitor_run_id'),
    model      VARCHAR   NOT NULL,
    version    INTEGER   NOT NULL,
    run_at     TIMESTAMP NOT NULL,
    who        VARCHAR   NOT NULL,
    source_sql VARCHAR   NOT NULL,
    threshold  DOUBLE    NOT NULL,
    drifted    INTEGER   NOT NULL    -- features (and the prediction) over the threshold
);

-- One row per feature, plus '__prediction__' for the prediction distribution.
CREATE TABLE dbml.monitor_results (
    run_id            BIGINT  NOT NULL,
    feature           VARCHAR NOT NULL,
    kind              VARCHAR,
    psi               DOUBLE,
    null_rate_train   DOUBLE,
    null_rate_now     DOUBLE,
    null_rate_change  DOUBLE,
    rows              BIGINT,
    drift             BOOLEAN,
    detail            JSON,
    PRIMARY KEY (run_id, feature)
);
