-- A delivery's idempotency records (`delivery_runs`, `deliveries`) matter only while the relay may send
-- the same queued message again, which is within its queue lifetime; they were kept for ever, two rows
-- for every delivery ever made. The mailbox role now drops those older than 30 days every hour, as it
-- drops stale Sieve follow-ups; these block-range indexes find them without reading the tables, at
-- almost no cost to each insert (rows arrive in time order).
CREATE INDEX delivery_runs_delivered_at ON delivery_runs USING brin (delivered_at);
CREATE INDEX deliveries_delivered_at ON deliveries USING brin (delivered_at);
