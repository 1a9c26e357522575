-- A realistic event stream for the benchmark (psql variable :events).
-- Visitors with one to three devices, a new UID every 15 events (lost
-- cookies), a third of them sign in (customer id md5 of their email), some
-- fill a lead form, two visitors in fifty share a browser, and one event in
-- 33 is sent twice with the same message id (an SDK retry).
SELECT greatest(:events / 40, 1) AS visitors \gset
DROP TABLE IF EXISTS workload;
CREATE TABLE workload AS
WITH ev AS (
    SELECT n, n % :visitors AS v, n / :visitors AS k FROM generate_series(0, :events - 1) AS n
), shaped AS (
    SELECT n, v, k,
           k % (1 + (v % 3 = 0)::int + (v % 7 = 0)::int) AS dev,
           CASE WHEN v % 50 IN (0, 1) THEN v - v % 2 ELSE v END AS device_owner
    FROM ev
)
SELECT n,
       format('u%s-%s-%s', v, dev, k / 15) AS uid,
       CASE WHEN v % 3 = 0 AND k = 20 THEN 'user' WHEN k = 10 AND v % 5 = 0 THEN 'form' ELSE 'pageview' END AS category,
       CASE WHEN v % 3 = 0 AND k = 20 THEN 'sign_in' WHEN k = 10 AND v % 5 = 0 THEN 'submit' ELSE 'view' END AS action,
       jsonb_build_object(
           'context', jsonb_build_object(
               'device_id', format('d%s-%s', device_owner, dev),
               'session_id', format('s%s-%s', v, k / 5),
               'message_id', format('m%s', n),
               'user_agent', (ARRAY[
                   'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                   'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
                   'Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:120.0) Gecko/20100101 Firefox/120.0',
                   'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36'])[1 + (v + dev) % 4],
               'page_url', format('https://shop.example/p/%s', k % 17),
               'locale', 'en-GB'))
       || CASE
            WHEN v % 3 = 0 AND k = 20 THEN jsonb_build_object(
                'dims', jsonb_build_object('customers', jsonb_build_object(
                    'customer_id', md5(format('visitor%s@example.com', v)), 'email', format('visitor%s@example.com', v),
                    'name', format('Visitor %s', v))),
                'extra', jsonb_build_object('identify_id', md5(format('visitor%s@example.com', v)),
                                            'identify_event', 'user_sign_in', 'identify_type', 'exact'))
            WHEN k = 10 AND v % 5 = 0 THEN jsonb_build_object(
                'dims', jsonb_build_object('customers', jsonb_build_object('email', format('visitor%s@example.com', v))))
            ELSE '{}'::jsonb
          END AS payload,
       '2026-11-01'::timestamptz + n * interval '1 second' AS event_time
FROM shaped;
-- SDK retries: the same event again, right after it.
ALTER TABLE workload ALTER COLUMN n TYPE numeric;
INSERT INTO workload SELECT n + 0.5, uid, category, action, payload, event_time FROM workload WHERE n % 33 = 0;
CREATE INDEX ON workload (n);
ANALYZE workload;
