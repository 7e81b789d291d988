-- 0008_status_pages: status pages (docs/status-pages.md).
--
-- One row per page, keyed by its slug (the URL /status/{slug}). `spec` is
-- the page as declared (src/status_pages/model.rs: title, description,
-- logo, public, show_response_times, embeddable, groups of checks by name
-- or label selector). Checks are referenced by name, not by id: a page
-- declared before its checks, or outliving one, stays valid and simply
-- shows what exists.
--
-- `owner`: pages declared in checks files are owned by files, pages
-- written through the API by the API; `checks apply` never changes nor
-- prunes an API-owned page and the API refuses to change a file-owned one
-- (as for checks, migration 0006). The slug rule is the check-name rule
-- (src/checks_file/names.rs), mirrored here.
CREATE TABLE status_pages (
    slug        text PRIMARY KEY CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    spec        jsonb NOT NULL,
    owner       text NOT NULL DEFAULT 'file' CHECK (owner IN ('file', 'api')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
