-- dbml quickstart: train, score and govern a model in SQL.
-- examples/quickstart.py loads the Palmer penguins into table `penguins` and runs this script.

-- A classifier: species from island, measurements and sex (which has NULLs).
TRAIN MODEL species FROM (SELECT * EXCLUDE (year) FROM penguins WHERE year < 2009) TARGET species;

-- Score the 2009 penguins it never saw; `*` expands to the model's features by name.
SELECT species AS actual, PREDICT(species, *) AS predicted,
       round(PREDICT_PROBA(species, *).Gentoo, 3) AS p_gentoo
FROM penguins WHERE year = 2009 ORDER BY random() LIMIT 8;

SELECT round(avg((PREDICT(species, *) = species)::DOUBLE), 3) AS held_out_accuracy
FROM penguins WHERE year = 2009;

-- A regression: body mass from the rest. Unseen islands or NULLs still score.
TRAIN MODEL mass FROM (SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL) TARGET body_mass_g
    WITH (hidden = [64, 32], seed = 7);

SELECT island, sex, round(PREDICT(mass, *)) AS predicted_mass_g
FROM (VALUES ('Biscoe', 'Gentoo', 47.5, 15.0, 220, 'male'),
             ('Atlantis', 'Adelie', 38.0, 18.0, 190, NULL)) AS v(island, species, bill_length_mm, bill_depth_mm, flipper_length_mm, sex);

-- The registry: every model, every version, its data, metrics and lineage.
SHOW MODELS;
SELECT model, version, task, row_count, round((metrics->>'log_loss')::DOUBLE, 3) AS log_loss,
       round((metrics->>'rmse')::DOUBLE, 1) AS rmse, onnx_size, parity_error, source_tables, data_fingerprint
FROM dbml.model_versions ORDER BY model, version;
SELECT action, model, version, who FROM dbml.audit_log ORDER BY id;
