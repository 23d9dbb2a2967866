-- RFC 3501 §6.4.4 / RFC 9051 §6.4.4: SENTBEFORE, SENTON and SENTSINCE compare the date as written in the
-- Date field, disregarding its time and time zone; sent_at (UTC) moves a late-evening message west of
-- Greenwich to the next day. New messages get the day from the parser; existing ones from the stored Date
-- value, or, where that cannot be read, from sent_at in UTC as before.
ALTER TABLE messages ADD COLUMN sent_date DATE;

CREATE FUNCTION mailbus_0005_sent_day(value TEXT, fallback TIMESTAMPTZ) RETURNS DATE
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    parts TEXT[];
BEGIN
    parts := regexp_match(value, '(\d{1,2})\s+([A-Za-z]{3})[A-Za-z]*\s+(\d{4})');
    IF parts IS NULL THEN
        RETURN (fallback AT TIME ZONE 'UTC')::date;
    END IF;
    RETURN to_date(parts[1] || ' ' || parts[2] || ' ' || parts[3], 'DD Mon YYYY');
EXCEPTION WHEN others THEN
    RETURN (fallback AT TIME ZONE 'UTC')::date;
END $$;

UPDATE messages
   SET sent_date = mailbus_0005_sent_day(header_values[array_position(header_names, 'date')], sent_at)
 WHERE sent_at IS NOT NULL;

DROP FUNCTION mailbus_0005_sent_day(TEXT, TIMESTAMPTZ);
