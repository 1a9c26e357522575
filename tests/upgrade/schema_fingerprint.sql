-- One line per object of the extension's schema: functions (signature,
-- result, settings, body digest, library, privileges), columns, indexes,
-- constraints, views, triggers, policies, table privileges and the tables
-- pg_dump keeps. Two installs with the same lines
-- have the same schema. Used by tests/upgrade.sh.
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
    SELECT format('function %s -> %s %s %s %s%s%s %s %s', p.oid::regprocedure, pg_get_function_result(p.oid),
                  coalesce(array_to_string(p.proconfig, ','), ''), md5(p.prosrc), p.provolatile, p.proisstrict, p.prosecdef,
                  coalesce(p.probin, ''), coalesce(array_to_string(p.proacl, ','), ''))
    FROM pg_proc p WHERE p.pronamespace = 'cdp'::regnamespace
    UNION ALL
    SELECT format('column %s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  coalesce(pg_get_expr(d.adbin, d.adrelid), ''))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = 'cdp'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'cdp'::regnamespace
    UNION ALL
    SELECT format('constraint %s %s', conrelid::regclass, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE connamespace = 'cdp'::regnamespace
    UNION ALL
    SELECT format('view %s %s', c.relname, md5(pg_get_viewdef(c.oid)))
    FROM pg_class c WHERE c.relnamespace = 'cdp'::regnamespace AND c.relkind = 'v'
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = 'cdp'::regnamespace AND NOT t.tgisinternal
    UNION ALL
    SELECT format('policy %s %s %s %s', polrelid::regclass, polname, pg_get_expr(polqual, polrelid), polroles::regrole[])
    FROM pg_policy WHERE polrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'cdp'::regnamespace)
    UNION ALL
    SELECT format('table %s rls=%s acl=%s', c.oid::regclass, c.relrowsecurity, coalesce(array_to_string(c.relacl, ','), ''))
    FROM pg_class c WHERE c.relnamespace = 'cdp'::regnamespace AND c.relkind IN ('r', 'v', 'S')
    UNION ALL
    SELECT 'dumped ' || cfg::regclass
    FROM pg_extension e, unnest(e.extconfig) AS cfg WHERE e.extname = 'cdp_identity'
) AS objects(line);
