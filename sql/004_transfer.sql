-- dbml registry, schema version 4: transfer lineage. A version trained with
-- WITH (base = 'big') records the version whose encoders and trunk it started from.

ALTER TABLE dbml.model_versions ADD COLUMN IF NOT EXISTS base_model VARCHAR;    -- set when trained on another version's trunk (transfer)
ALTER TABLE dbml.model_versions ADD COLUMN IF NOT EXISTS base_version INTEGER;  -- that version's number
