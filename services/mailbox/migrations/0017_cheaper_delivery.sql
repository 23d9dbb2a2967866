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

-- A message's octets and its search text are compressed with lz4 rather than pglz when the server has it
-- (PostgreSQL 14 and later, built with lz4, as Debian's and the official images are): a 4 KiB message
-- compresses in about 4 µs instead of 18 (measured by inserting 20,000 delivered messages into a table of
-- each kind). The price is room: the benchmark's 4 KiB messages take about a third more (5,000 of them,
-- 20 MB raw, took 3.4 MB with pglz and 4.5 MB with lz4), still a quarter of their raw size. Rows stored
-- before keep their pglz; both read alike.
DO $$
BEGIN
    ALTER TABLE messages ALTER COLUMN content SET COMPRESSION lz4,
                         ALTER COLUMN search_header SET COMPRESSION lz4,
                         ALTER COLUMN search_body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not built into this server; messages stay compressed with pglz';
END $$;
