-- dbml registry, schema version 1.
-- Versions are immutable and numbered per model; only dbml.registry writes here.

CREATE SCHEMA IF NOT EXISTS dbml;

CREATE TABLE IF NOT EXISTS dbml.schema_version (
    version     INTEGER PRIMARY KEY,
    applied_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- One row per trained or imported model version: what it is, what shaped it, how good it is.
CREATE TABLE dbml.model_versions (
    model             VARCHAR   NOT NULL,
    version           INTEGER   NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    created_by        VARCHAR   NOT NULL,
    architecture      VARCHAR   NOT NULL,
    task              VARCHAR   NOT NULL,   -- classification | regression | imported
    options           JSON      NOT NULL,   -- every option, defaults filled in
    features          JSON      NOT NULL,   -- [{name, kind, sql_type}] in model order
    profile           JSON      NOT NULL,   -- per feature: counts, nulls, mean, std, quantiles, vocabulary
    target            VARCHAR,
    target_type       VARCHAR,              -- the target's DuckDB type; PREDICT returns it
    labels            JSON,                 -- class labels in output order
    source_sql        VARCHAR   NOT NULL,   -- the query the rows came from
    source_tables     VARCHAR[] NOT NULL,   -- base tables behind it (through views and subqueries)
    row_count         BIGINT    NOT NULL,   -- rows used (NULL targets left out)
    train_rows        BIGINT    NOT NULL,
    validation_rows   BIGINT    NOT NULL,
    data_fingerprint  VARCHAR   NOT NULL,   -- order-independent hash of the rows, computed by DuckDB
    metrics           JSON      NOT NULL,   -- validation metrics
    epochs            INTEGER   NOT NULL,   -- epochs run (early stopping may end sooner)
    train_seconds     DOUBLE    NOT NULL,
    device            VARCHAR   NOT NULL,
    library_versions  JSON      NOT NULL,
    onnx_sha256       VARCHAR   NOT NULL,
    onnx_size         BIGINT    NOT NULL,
    parity_error      DOUBLE    NOT NULL,   -- largest |onnx - torch| on held-out rows
    parent_version    INTEGER,              -- set when fine-tuned from another version
    PRIMARY KEY (model, version)
);

CREATE TABLE dbml.model_blobs (
    model    VARCHAR NOT NULL,
    version  INTEGER NOT NULL,
    onnx     BLOB    NOT NULL,
    PRIMARY KEY (model, version)
);

-- Deployment: an alias names the version that serves; 'default' is what a bare name scores with.
CREATE TABLE dbml.aliases (
    model    VARCHAR   NOT NULL,
    alias    VARCHAR   NOT NULL,
    version  INTEGER   NOT NULL,
    set_at   TIMESTAMP NOT NULL,
    set_by   VARCHAR   NOT NULL,
    PRIMARY KEY (model, alias)
);

CREATE TABLE dbml.training_log (
    model       VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    train_loss  DOUBLE  NOT NULL,
    val_loss    DOUBLE,
    val_metric  DOUBLE,              -- accuracy (classification) or R2 (regression)
    lr          DOUBLE  NOT NULL,
    seconds     DOUBLE  NOT NULL,
    PRIMARY KEY (model, version, epoch)
);

CREATE SEQUENCE dbml.audit_id;

-- Append-only: rows stay when models are dropped.
CREATE TABLE dbml.audit_log (
    id       BIGINT    PRIMARY KEY DEFAULT nextval('dbml.audit_id'),
    logged_at TIMESTAMP NOT NULL,
    who      VARCHAR   NOT NULL,
    action   VARCHAR   NOT NULL,     -- TRAIN, DROP, ...
    model    VARCHAR,
    version  INTEGER,
    detail   JSON
);

-- One row per model: its newest version, the version a bare name scores with, and its facts.
CREATE VIEW dbml.models AS
SELECT
    v.model,
    count(*)                                  AS versions,
    max(v.version)                            AS latest_version,
    coalesce(any_value(d.version), max(v.version)) AS default_version,
    arg_max(v.architecture, v.version)        AS architecture,
    arg_max(v.task, v.version)                AS task,
    arg_max(v.target, v.version)              AS target,
    arg_max(v.metrics, v.version)             AS metrics,
    arg_max(v.row_count, v.version)           AS row_count,
    min(v.created_at)                         AS created_at,
    max(v.created_at)                         AS updated_at
FROM dbml.model_versions AS v
LEFT JOIN dbml.aliases AS d ON d.model = v.model AND d.alias = 'default'
GROUP BY v.model;
