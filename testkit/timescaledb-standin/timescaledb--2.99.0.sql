-- TEST STAND-IN for TimescaleDB's create_hypertable (the 2.x "old" API the hub calls), for the
-- Observability Hub's tests. Same signature and defaults as TimescaleDB's, so a call that
-- resolves here resolves there; it enforces what TimescaleDB enforces at this call (a non-empty
-- table needs migrate_data, every unique index must include the time column, a second call
-- needs if_not_exists) and records every call with the table's unique indexes at that moment.

CREATE TABLE hubtest_hypertable_calls (
    n                      BIGSERIAL PRIMARY KEY,
    called_at              TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    relation               TEXT NOT NULL,
    time_column_name       TEXT NOT NULL,
    if_not_exists          BOOLEAN NOT NULL,
    migrate_data           BOOLEAN NOT NULL,
    create_default_indexes BOOLEAN NOT NULL,
    other_arguments_set    TEXT[] NOT NULL,
    unique_indexes         TEXT[] NOT NULL,
    rows_in_table          BIGINT NOT NULL,
    outcome                TEXT NOT NULL
);

CREATE TABLE hubtest_hypertables (relation TEXT PRIMARY KEY, time_column_name TEXT NOT NULL);

CREATE FUNCTION create_hypertable(
    relation REGCLASS,
    time_column_name NAME,
    partitioning_column NAME = NULL,
    number_partitions INTEGER = NULL,
    associated_schema_name NAME = NULL,
    associated_table_prefix NAME = NULL,
    chunk_time_interval ANYELEMENT = NULL::BIGINT,
    create_default_indexes BOOLEAN = TRUE,
    if_not_exists BOOLEAN = FALSE,
    partitioning_func REGPROC = NULL,
    migrate_data BOOLEAN = FALSE,
    chunk_target_size TEXT = NULL,
    chunk_sizing_func REGPROC = NULL,
    time_partitioning_func REGPROC = NULL
) RETURNS TABLE (hypertable_id INTEGER, schema_name NAME, table_name NAME, created BOOLEAN)
LANGUAGE plpgsql AS $fn$
DECLARE
    rel TEXT := relation::TEXT;
    uniques TEXT[];
    missing_time TEXT;
    row_count BIGINT;
    others TEXT[] := ARRAY[]::TEXT[];
    result TEXT := 'created';
BEGIN
    IF partitioning_column IS NOT NULL THEN others := others || 'partitioning_column'; END IF;
    IF number_partitions IS NOT NULL THEN others := others || 'number_partitions'; END IF;
    IF chunk_time_interval IS NOT NULL THEN others := others || 'chunk_time_interval'; END IF;
    IF partitioning_func IS NOT NULL THEN others := others || 'partitioning_func'; END IF;
    IF chunk_target_size IS NOT NULL THEN others := others || 'chunk_target_size'; END IF;
    SELECT COALESCE(array_agg(c.relname::TEXT ORDER BY c.relname), ARRAY[]::TEXT[])
      INTO uniques
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE i.indrelid = relation AND i.indisunique;
    SELECT c.relname INTO missing_time
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE i.indrelid = relation AND i.indisunique
       AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = relation AND a.attname = time_column_name
                          AND a.attnum = ANY (i.indkey))
     LIMIT 1;
    EXECUTE format('SELECT COUNT(*) FROM %s', relation) INTO row_count;

    IF EXISTS (SELECT 1 FROM hubtest_hypertables h WHERE h.relation = rel) THEN
        IF NOT if_not_exists THEN
            RAISE EXCEPTION 'table "%" is already a hypertable', rel USING ERRCODE = 'TS110';
        END IF;
        RAISE NOTICE 'table "%" is already a hypertable, skipping', rel;
        result := 'skipped';
    ELSIF missing_time IS NOT NULL THEN
        RAISE EXCEPTION 'cannot create a unique index without the column "%" (used in partitioning)',
            time_column_name USING ERRCODE = 'TS103';
    ELSIF row_count > 0 AND NOT migrate_data THEN
        RAISE EXCEPTION 'table "%" is not empty', rel
            USING ERRCODE = 'TS102', HINT = 'You can migrate data by specifying migrate_data => true when calling this function.';
    ELSE
        INSERT INTO hubtest_hypertables VALUES (rel, time_column_name);
    END IF;

    INSERT INTO hubtest_hypertable_calls (relation, time_column_name, if_not_exists, migrate_data,
        create_default_indexes, other_arguments_set, unique_indexes, rows_in_table, outcome)
    VALUES (rel, time_column_name, if_not_exists, migrate_data, create_default_indexes, others,
        uniques, row_count, result);
    RETURN QUERY SELECT 1, 'public'::NAME, rel::NAME, result = 'created';
END
$fn$;
