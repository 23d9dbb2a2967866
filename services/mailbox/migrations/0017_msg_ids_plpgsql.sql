-- mailbus_msg_ids, the same answer, as PL/pgSQL: the threading trigger calls it three times for every
-- message stored, and a LANGUAGE sql function that cannot be inlined there is planned again on every
-- call (a tenth of a millisecond per delivery, measured with pg_stat_statements), where PL/pgSQL keeps
-- its plans for the session.
CREATE OR REPLACE FUNCTION mailbus_msg_ids(value TEXT) RETURNS TEXT[] LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF coalesce(value, '') ~ '<[^<>\s]+>' THEN
        RETURN (SELECT array_agg(m[1]) FROM regexp_matches(value, '<([^<>\s]+)>', 'g') AS m);
    END IF;
    RETURN coalesce((SELECT array_agg(m[1]) FROM regexp_matches(coalesce(value, ''), '([^<>\s,;]+@[^<>\s,;]+)', 'g') AS m), '{}');
END $$;
