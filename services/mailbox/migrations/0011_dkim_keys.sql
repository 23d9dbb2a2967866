-- DKIM signing keys per hosted domain (RFC 6376; ed25519-sha256 of RFC 8463 and rsa-sha256). Several keys
-- per domain, each under its own selector, so that a rotation can publish the next key in DNS before it
-- signs anything and keep the previous one published while mail signed with it is still in flight.
CREATE TABLE dkim_keys (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id    BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    -- RFC 6376 §3.1: a sub-domain label (or several, dot-separated).
    selector     TEXT NOT NULL CHECK (selector ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$'),
    algorithm    TEXT NOT NULL CHECK (algorithm IN ('ed25519', 'rsa')),
    -- active: signs; published: in DNS, not signing (next or previous); retired: neither.
    state        TEXT NOT NULL CHECK (state IN ('active', 'published', 'retired')),
    -- PKCS#8 DER (ed25519) or PKCS#1 DER (RSA). Only the SigningKeys call reads it back.
    private_key  BYTEA NOT NULL,
    -- What the DNS record's p= carries: the raw key (ed25519) or SubjectPublicKeyInfo DER (RSA).
    public_key   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (domain_id, selector)
);

-- At most one signing key per domain and algorithm: Activate moves the previous one back to published.
CREATE UNIQUE INDEX dkim_keys_one_active ON dkim_keys (domain_id, algorithm) WHERE state = 'active';
