\set v random(1, 20000)
\set k random(0, 39)
SELECT cdp.track_event('pg-u' || :v, 'pageview', 'view', jsonb_build_object('context', jsonb_build_object('device_id', 'pg-d' || :v, 'session_id', 'pg-s' || :v || '-' || :k, 'user_agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0', 'page_url', 'https://shop.example/p/' || :k, 'locale', 'en-GB')));
