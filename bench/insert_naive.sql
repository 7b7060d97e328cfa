\set n random(1, 10)
\set t random(100, 20000)
INSERT INTO naive_usage (request_id, provider, model, input_tokens, output_tokens, cache_read_tokens, api_key, app, principal)
VALUES (gen_random_uuid()::text, 'openai', 'gpt-4o-2024-08-06', :t, 300, 1000, 'key-' || :n, 'app-' || :n, 'svc-bench');
