/*
 * citus.c
 *		What tokenledger needs to know of Citus, where the ledger is
 *		distributed by it (see the README's Citus section).
 *
 * On a Citus node a distributed or reference table is an empty shell; its
 * rows are in shards, tables named after it with the shard's id appended,
 * and the triggers and policies that run on a node run on those.  Two
 * things follow for the code that reads or names tables directly:
 *
 * - citus_rows_relid: the rows of a reference table (team_members, read by
 *	 the row-level security policies) are read from its placement on this
 *	 node, not through the shell: a query of the shell from within a
 *	 shard's query is a distributed query nested in another, which Citus
 *	 refuses;
 * - citus_table_of_shard: a change to a shard of a cached table (prices,
 *	 say) drops the cache of the table itself, whose name the cache knows;
 * - citus_colocated_shard: the rollups that the insert path keeps for a row
 *	 of a shard of the ledger are written into the shard of the rollup that
 *	 Citus placed beside it (same hash range, same node), not into the
 *	 rollup's shell.
 *
 * Without Citus (no pg_dist_shard) they answer at once, with no query.
 */
#include "postgres.h"

#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "tokenledger.h"
#include "ledger.h"

static bool
citus_here(void)
{
	return OidIsValid(get_relname_relid("pg_dist_shard", PG_CATALOG_NAMESPACE));
}

/* the first column of a one-row query with one oid argument, or InvalidOid */
static Oid
oid_query(const char *sql, Datum arg, Oid argtype)
{
	Oid   argtypes[1] = {argtype};
	Datum args[1] = {arg};
	Oid   result = InvalidOid;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool  isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			result = DatumGetObjectId(d);
	}
	SPI_finish();
	return result;
}

/*
 * The relation that holds a table's rows on this node: the table itself,
 * or, where Citus made it a reference table, its placement on this node.
 */
Oid
citus_rows_relid(Oid relid)
{
	Oid local;

	if (!citus_here())
		return relid;
	local =
		oid_query("SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', n.nspname,"
				  " c.relname OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) s.shardid))::oid"
				  " FROM pg_catalog.pg_dist_shard s"
				  " JOIN pg_catalog.pg_dist_partition d ON d.logicalrelid = s.logicalrelid"
				  " JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid"
				  " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
				  " WHERE s.logicalrelid = $1 AND d.partmethod = 'n'",
				  ObjectIdGetDatum(relid), OIDOID);
	return OidIsValid(local) ? local : relid;
}

/* the shard id a relation's name ends with (<table>_<shard id>), or 0 */
static int64
shard_id_of(Relation rel)
{
	const char *name = RelationGetRelationName(rel);
	const char *tail = strrchr(name, '_');
	char       *end;
	long long   shardid;

	if (tail == NULL || tail[1] == '\0')
		return 0;
	shardid = strtoll(tail + 1, &end, 10);
	if (*end != '\0' || shardid <= 0 || !citus_here())
		return 0;
	return (int64) shardid;
}

/* the table a relation is a Citus shard of, or InvalidOid */
Oid
citus_table_of_shard(Relation rel)
{
	int64 shardid = shard_id_of(rel);

	if (shardid == 0)
		return InvalidOid;
	return oid_query(
		"SELECT s.logicalrelid::oid FROM pg_catalog.pg_dist_shard s WHERE s.shardid = $1",
		Int64GetDatum(shardid), INT8OID);
}

/*
 * The shard of table (distributed and co-located with the table rel is a
 * shard of) that holds the same hash range, on this node, and that shard's
 * copy of the table's index index_name: false when rel is no shard, or the
 * co-located shard is not here.
 */
bool
citus_colocated_shard(Relation rel, Oid table, const char *index_name, Oid *shard, Oid *shard_index)
{
	int64 shardid = shard_id_of(rel);
	Oid   argtypes[3] = {INT8OID, OIDOID, TEXTOID};
	Datum args[3];
	bool  found = false;

	if (shardid == 0)
		return false;
	args[0] = Int64GetDatum(shardid);
	args[1] = ObjectIdGetDatum(table);
	args[2] = CStringGetTextDatum(index_name);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(
			"SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', n.nspname,"
			"         c.relname OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) "
			"t.shardid))::oid,"
			"       pg_catalog.to_regclass(pg_catalog.format('%I.%I', n.nspname,"
			"         $3 OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) t.shardid))::oid"
			" FROM pg_catalog.pg_dist_shard f"
			" JOIN pg_catalog.pg_dist_shard t ON t.logicalrelid OPERATOR(pg_catalog.=) $2"
			"  AND t.shardminvalue OPERATOR(pg_catalog.=) f.shardminvalue"
			" JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.logicalrelid"
			" JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
			" WHERE f.shardid OPERATOR(pg_catalog.=) $1",
			3, argtypes, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool  null1;
		bool  null2;
		Datum d1 = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &null1);
		Datum d2 = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &null2);

		if (!null1 && !null2)
		{
			*shard = DatumGetObjectId(d1);
			*shard_index = DatumGetObjectId(d2);
			found = true;
		}
	}
	SPI_finish();
	return found;
}
