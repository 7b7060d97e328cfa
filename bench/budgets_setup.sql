-- bench/budgets_setup.sql: ten active budgets of several scopes and periods;
-- a benchmarked row falls under three to six of them
INSERT INTO tokenledger.budgets (name, scope, scope_value, period, amount, mode)
SELECT 'b' || i, s, v, p, '1000000 USD', 'alert' FROM (VALUES
 (1, 'global', NULL, 'month'), (2, 'global', NULL, 'day'), (3, 'api_key', 'key-1', 'month'), (4, 'api_key', 'key-2', 'day'),
 (5, 'app', 'app-1', 'month'), (6, 'app', 'app-3', 'week'), (7, 'initiative', 'initiative-1', 'month'), (8, 'initiative', 'initiative-2', 'quarter'),
 (9, 'team', 'team-1', 'month'), (10, 'principal', 'svc-bench', 'year')) v(i, s, v, p);
