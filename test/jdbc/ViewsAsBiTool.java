/*
 * Every reporting view read as a BI tool reads it: through the PostgreSQL
 * JDBC driver, logged in as a role granted tokenledger_reader.
 *
 * Metabase, Tableau, DBeaver and most BI tools list a view's columns with
 * DatabaseMetaData.getColumns (the type tells them what a column is, REMARKS
 * is its description), then read rows with getObject, getBigDecimal and
 * getTimestamp.  For every view in schema tokenledger that tokenledger_reader
 * may read (found in the catalog, so a new view is covered without editing
 * this file), this checks that
 *   - getColumns gives standard JDBC types only (no OTHER, STRUCT, DISTINCT,
 *     JAVA_OBJECT), and REMARKS equal the view's and the columns' COMMENTs;
 *   - SELECT * runs and returns rows, its ResultSetMetaData types are standard
 *     too, and every value comes back as its Java type: BigDecimal for numeric,
 *     Long for bigint, java.sql.Date for date, java.sql.Timestamp for
 *     timestamptz (finite: BI tools cannot chart infinity);
 *   - every numeric column reads through getBigDecimal exactly: its sum over
 *     the rows equals the server's sum;
 *   - the money and count columns equal the ledger's own figures, computed
 *     from usage and outcomes with amount(sum(cost)) (figures.sql), read again
 *     through server-prepared statements in binary transfer; a view with a
 *     currency column and no figure fails.
 *
 * Usage: java -cp <classes>:/usr/share/java/postgresql.jar ViewsAsBiTool <dir
 * of ledger.sql and figures.sql>.  Connects with the libpq environment
 * (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) over TCP (a PGHOST that is
 * a socket directory means localhost: the driver speaks TCP only), builds a
 * database and a login of its own, drops both at the end, and prints TAP.
 */

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.JDBCType;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

public class ViewsAsBiTool {
	static final String DB = "tokenledger_jdbc_test";
	static final String READER = "tokenledger_jdbc_bi";
	static final String PASSWORD = "tl-jdbc-bi-test";

	/* the types every BI tool maps without a driver-specific extension */
	static final Set<Integer> STANDARD = Set.of(Types.BIGINT, Types.INTEGER, Types.SMALLINT,
			Types.NUMERIC, Types.DECIMAL, Types.DOUBLE, Types.REAL, Types.FLOAT, Types.VARCHAR,
			Types.CHAR, Types.LONGVARCHAR, Types.DATE, Types.TIMESTAMP,
			Types.TIMESTAMP_WITH_TIMEZONE, Types.BOOLEAN, Types.BIT);

	static int tests = 0;
	static int failed = 0;

	static void check(boolean ok, String description, List<String> details) {
		tests++;
		if (!ok)
			failed++;
		System.out.println((ok ? "ok " : "not ok ") + tests + " - " + description);
		if (!ok)
			for (String detail : details.subList(0, Math.min(details.size(), 20)))
				for (String line : detail.split("\n"))
					System.out.println("#   " + line);
		System.out.flush();
	}

	static void check(boolean ok, String description) {
		check(ok, description, List.of());
	}

	static String env(String name, String otherwise) {
		String v = System.getenv(name);
		return v == null || v.isEmpty() ? otherwise : v;
	}

	static Connection connect(String db, String user, String password, boolean binary) throws SQLException {
		String host = env("PGHOST", "localhost");
		if (host.startsWith("/"))
			host = "localhost";
		Properties p = new Properties();
		p.setProperty("user", user);
		if (password != null)
			p.setProperty("password", password);
		p.setProperty("ApplicationName", "tokenledger-jdbc-test");
		/* -1: every statement server-prepared, results in binary where the driver can */
		if (binary)
			p.setProperty("prepareThreshold", "-1");
		return DriverManager.getConnection("jdbc:postgresql://" + host + ":" + env("PGPORT", "5432") + "/" + db, p);
	}

	static String quote(String ident) {
		return "\"" + ident.replace("\"", "\"\"") + "\"";
	}

	static String typeName(int type) {
		try {
			return JDBCType.valueOf(type).getName();
		} catch (IllegalArgumentException e) {
			return Integer.toString(type);
		}
	}

	/* one "-- figure: view | keys | column [| filter]" of figures.sql */
	record Figure(String view, List<String> keys, String column, String filter, String sql) {
	}

	static String preamble;

	static List<Figure> readFigures(Path file) throws Exception {
		List<Figure> figures = new ArrayList<>();
		String[] parts = Files.readString(file, StandardCharsets.UTF_8).split("(?m)^-- figure: ");
		preamble = parts[0];
		for (int i = 1; i < parts.length; i++) {
			int eol = parts[i].indexOf('\n');
			String[] head = parts[i].substring(0, eol).split("\\|");
			List<String> keys = new ArrayList<>();
			for (String k : head[1].split(","))
				keys.add(k.trim());
			figures.add(new Figure(head[0].trim(), keys, head[2].trim(), head.length > 3 ? head[3].trim() : null,
					parts[i].substring(eol + 1).trim().replaceAll(";$", "")));
		}
		return figures;
	}

	static void dropAll(Connection postgres) throws SQLException {
		try (Statement s = postgres.createStatement()) {
			s.execute("DROP DATABASE IF EXISTS " + DB + " WITH (FORCE)");
			s.execute("DROP ROLE IF EXISTS " + READER);
		}
	}

	/* the key of a row: the key columns as text, NULL as \N */
	static String key(ResultSet rs, List<String> columns) throws SQLException {
		StringBuilder k = new StringBuilder();
		for (int i = 0; i < columns.size(); i++) {
			String v = rs.getString(columns.get(i));
			k.append(i > 0 ? " | " : "").append(v == null ? "\\N" : v);
		}
		return k.toString();
	}

	static List<String> differences(Map<String, BigDecimal> view, Map<String, BigDecimal> ledger) {
		List<String> out = new ArrayList<>();
		Set<String> keys = new TreeSet<>(view.keySet());
		keys.addAll(ledger.keySet());
		for (String k : keys) {
			BigDecimal a = view.get(k);
			BigDecimal b = ledger.get(k);
			if (a == null || b == null || a.compareTo(b) != 0)
				out.add(k + ": view " + a + ", ledger " + b);
		}
		return out;
	}

	static void removeZeros(Map<String, BigDecimal> m) {
		m.values().removeIf(v -> v.signum() == 0);
	}

	/* a figure read from the view (its key and value columns, as a chart's
	 * query would, server-prepared and binary) against the ledger's: the
	 * differences into diff; returns how many figures the ledger has */
	static int compare(Figure f, Connection reader, Connection owner, List<String> diff) throws SQLException {
		Map<String, BigDecimal> fromView = new TreeMap<>();
		Map<String, BigDecimal> fromLedger = new TreeMap<>();
		StringBuilder q = new StringBuilder("SELECT ");
		for (String k : f.keys())
			q.append(quote(k)).append(", ");
		q.append(quote(f.column())).append(" FROM tokenledger.").append(quote(f.view()));
		if (f.filter() != null)
			q.append(" WHERE ").append(f.filter());
		try (PreparedStatement ps = reader.prepareStatement(q.toString()); ResultSet rs = ps.executeQuery()) {
			while (rs.next()) {
				BigDecimal v = rs.getBigDecimal(f.column());
				if (v != null)
					fromView.merge(key(rs, f.keys()), v, BigDecimal::add);
			}
		}
		try (Statement s = owner.createStatement(); ResultSet rs = s.executeQuery(f.sql())) {
			int n = f.keys().size();
			while (rs.next()) {
				StringBuilder k = new StringBuilder();
				for (int i = 1; i <= n; i++) {
					String v = rs.getString(i);
					k.append(i > 1 ? " | " : "").append(v == null ? "\\N" : v);
				}
				fromLedger.merge(k.toString(), new BigDecimal(rs.getString(n + 1)), BigDecimal::add);
			}
		}
		removeZeros(fromView);
		removeZeros(fromLedger);
		diff.addAll(differences(fromView, fromLedger));
		if (fromLedger.isEmpty())
			diff.add("the ledger has no figure to compare");
		return fromLedger.size();
	}

	public static void main(String[] args) throws Exception {
		Path dir = Path.of(args.length > 0 ? args[0] : "test/jdbc");
		String admin = env("PGUSER", System.getProperty("user.name"));
		String adminPassword = System.getenv("PGPASSWORD");
		List<Figure> figures = readFigures(dir.resolve("figures.sql"));

		Connection postgres = connect(env("PGDATABASE", "postgres"), admin, adminPassword, false);
		postgres.setAutoCommit(true);
		dropAll(postgres);
		try (Statement s = postgres.createStatement()) {
			s.execute("CREATE DATABASE " + DB);
		}
		try {
			run(dir, admin, adminPassword, figures);
		} catch (Exception e) {
			check(false, "the test ran to its end", List.of(e.toString()));
		} finally {
			dropAll(postgres);
			postgres.close();
		}
		System.out.println("1.." + tests);
		System.exit(failed == 0 ? 0 : 1);
	}

	static void run(Path dir, String admin, String adminPassword, List<Figure> figures) throws Exception {
		Connection owner = connect(DB, admin, adminPassword, false);
		try (Statement s = owner.createStatement()) {
			s.execute("CREATE EXTENSION tokenledger");
			s.execute("CREATE ROLE " + READER + " LOGIN PASSWORD '" + PASSWORD + "' IN ROLE tokenledger_reader");
			s.execute(Files.readString(dir.resolve("ledger.sql"), StandardCharsets.UTF_8));
			s.execute("INSERT INTO tokenledger.team_members (role_name, team) VALUES ('" + READER + "', '*')");
			s.execute(preamble);
		}

		/* the views the reader may read, and their comments, from the catalog */
		Map<String, String> viewComments = new TreeMap<>();
		try (Statement s = owner.createStatement();
				ResultSet rs = s.executeQuery("SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
						+ "WHERE c.relnamespace = 'tokenledger'::regnamespace AND c.relkind IN ('v', 'm') "
						+ "AND has_table_privilege('tokenledger_reader', c.oid, 'SELECT') ORDER BY 1")) {
			while (rs.next())
				viewComments.put(rs.getString(1), rs.getString(2));
		}
		check(viewComments.size() >= 10, "the catalog lists " + viewComments.size()
				+ " views that tokenledger_reader may read: " + String.join(", ", viewComments.keySet()));

		Connection reader = connect(DB, READER, PASSWORD, false);
		Connection readerBinary = connect(DB, READER, PASSWORD, true);
		DatabaseMetaData md = reader.getMetaData();
		String escape = md.getSearchStringEscape();
		try (Statement s = reader.createStatement(); ResultSet rs = s.executeQuery("SELECT current_user")) {
			rs.next();
			check(rs.getString(1).equals(READER), "logged in over TCP as " + READER + ", a member of tokenledger_reader");
		}

		for (String view : viewComments.keySet()) {
			/* 1. getColumns: standard types, REMARKS = COMMENT */
			Map<String, String> comments = new LinkedHashMap<>();
			try (PreparedStatement ps = owner.prepareStatement("SELECT a.attname, col_description(a.attrelid, a.attnum) "
					+ "FROM pg_attribute a WHERE a.attrelid = ('tokenledger.' || quote_ident(?))::regclass "
					+ "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")) {
				ps.setString(1, view);
				try (ResultSet rs = ps.executeQuery()) {
					while (rs.next())
						comments.put(rs.getString(1), rs.getString(2));
				}
			}
			List<String> badTypes = new ArrayList<>();
			List<String> badRemarks = new ArrayList<>();
			List<String> seen = new ArrayList<>();
			String pattern = view.replace(escape, escape + escape).replace("_", escape + "_").replace("%", escape + "%");
			try (ResultSet rs = md.getColumns(null, "tokenledger", pattern, "%")) {
				while (rs.next()) {
					String col = rs.getString("COLUMN_NAME");
					int type = rs.getInt("DATA_TYPE");
					String remarks = rs.getString("REMARKS");
					seen.add(col);
					if (!STANDARD.contains(type))
						badTypes.add(col + ": " + typeName(type) + " (" + rs.getString("TYPE_NAME") + ")");
					if (remarks == null || !remarks.equals(comments.get(col)))
						badRemarks.add(col + ": REMARKS " + remarks + ", COMMENT " + comments.get(col));
				}
			}
			String viewRemarks = null;
			try (ResultSet rs = md.getTables(null, "tokenledger", pattern, new String[] { "VIEW", "MATERIALIZED VIEW" })) {
				if (rs.next())
					viewRemarks = rs.getString("REMARKS");
			}
			if (viewRemarks == null || !viewRemarks.equals(viewComments.get(view)))
				badRemarks.add(0, "the view: REMARKS " + viewRemarks + ", COMMENT " + viewComments.get(view));
			if (!seen.equals(new ArrayList<>(comments.keySet())))
				badTypes.add(0, "getColumns lists " + seen + ", the catalog " + comments.keySet());
			check(badTypes.isEmpty(), view + ": getColumns gives standard JDBC types only (" + seen.size() + " columns)",
					badTypes);
			check(badRemarks.isEmpty(), view + ": REMARKS are the view's and the columns' COMMENTs", badRemarks);

			/* 2. SELECT *: runs, rows, standard types, Java types of the values
			 * (one transaction with step 3, so that figures of now() agree) */
			reader.setAutoCommit(false);
			reader.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
			List<String> badValues = new ArrayList<>();
			List<String> numeric = new ArrayList<>();
			Map<String, BigDecimal> sums = new LinkedHashMap<>();
			int rows = 0;
			int timeValues = 0;
			try (Statement s = reader.createStatement();
					ResultSet rs = s.executeQuery("SELECT * FROM tokenledger." + quote(view))) {
				ResultSetMetaData m = rs.getMetaData();
				int n = m.getColumnCount();
				Map<Integer, Integer> timeSeen = new TreeMap<>();
				for (int i = 1; i <= n; i++) {
					int t = m.getColumnType(i);
					if (!STANDARD.contains(t))
						badValues.add(m.getColumnName(i) + ": ResultSetMetaData type " + typeName(t) + " ("
								+ m.getColumnTypeName(i) + ")");
					if (t == Types.NUMERIC || t == Types.DECIMAL) {
						numeric.add(m.getColumnName(i));
						sums.put(m.getColumnName(i), BigDecimal.ZERO);
					}
					if (t == Types.DATE || t == Types.TIMESTAMP || t == Types.TIMESTAMP_WITH_TIMEZONE)
						timeSeen.put(i, 0);
				}
				while (rs.next()) {
					rows++;
					for (int i = 1; i <= n; i++) {
						Object v = rs.getObject(i);
						if (v == null)
							continue;
						int t = m.getColumnType(i);
						String col = m.getColumnName(i);
						Class<?> want = switch (t) {
						case Types.DATE -> java.sql.Date.class;
						case Types.TIMESTAMP, Types.TIMESTAMP_WITH_TIMEZONE -> Timestamp.class;
						case Types.NUMERIC, Types.DECIMAL -> BigDecimal.class;
						case Types.BIGINT -> Long.class;
						case Types.INTEGER -> Integer.class;
						case Types.BIT, Types.BOOLEAN -> Boolean.class;
						case Types.VARCHAR, Types.CHAR, Types.LONGVARCHAR -> String.class;
						default -> null;
						};
						if (want != null && !want.isInstance(v))
							badValues.add(col + ": getObject gives " + v.getClass().getName() + ", not " + want.getName());
						if (timeSeen.containsKey(i)) {
							timeSeen.merge(i, 1, Integer::sum);
							timeValues++;
							if (v instanceof Timestamp ts && (ts.getTime() == org.postgresql.PGStatement.DATE_POSITIVE_INFINITY
									|| ts.getTime() == org.postgresql.PGStatement.DATE_NEGATIVE_INFINITY))
								badValues.add(col + ": an infinite timestamp (" + rs.getString(i) + ")");
						}
						if (sums.containsKey(col))
							sums.merge(col, rs.getBigDecimal(i), BigDecimal::add);
					}
				}
				for (Map.Entry<Integer, Integer> e : timeSeen.entrySet())
					if (e.getValue() == 0)
						badValues.add(m.getColumnName(e.getKey()) + ": no value to check (NULL in every row)");
			} catch (SQLException e) {
				badValues.add(e.toString());
			}
			badValues = new ArrayList<>(new java.util.LinkedHashSet<>(badValues));
			check(badValues.isEmpty() && rows > 0, view + ": SELECT * gives " + rows + " rows as the reader, every value of its Java type ("
					+ timeValues + " date/timestamp values as java.sql.Date/Timestamp)", badValues);

			/* 3. numeric columns exactly: the sum of getBigDecimal = the server's sum */
			List<String> inexact = new ArrayList<>();
			if (!numeric.isEmpty()) {
				StringBuilder q = new StringBuilder("SELECT ");
				for (int i = 0; i < numeric.size(); i++)
					q.append(i > 0 ? ", " : "").append("sum(").append(quote(numeric.get(i))).append(")::text");
				q.append(" FROM tokenledger.").append(quote(view));
				try (Statement s = reader.createStatement(); ResultSet rs = s.executeQuery(q.toString())) {
					rs.next();
					for (int i = 0; i < numeric.size(); i++) {
						String server = rs.getString(i + 1);
						BigDecimal client = sums.get(numeric.get(i));
						if (server == null ? client.signum() != 0 : new BigDecimal(server).compareTo(client) != 0)
							inexact.add(numeric.get(i) + ": getBigDecimal sums to " + client + ", the server to " + server);
					}
				} catch (SQLException e) {
					inexact.add(e.toString());
				}
			}
			reader.rollback();
			reader.setAutoCommit(true);
			check(inexact.isEmpty(), view + ": its " + numeric.size() + " numeric columns read exactly through getBigDecimal",
					inexact);

			/* 4. the money and counts against the ledger's own figures */
			boolean hasCurrency = comments.keySet().stream().anyMatch(c -> c.toLowerCase().endsWith("currency"));
			int compared = 0;
			for (Figure f : figures) {
				if (!f.view().equals(view))
					continue;
				compared++;
				List<String> diff = new ArrayList<>();
				int n = 0;
				try {
					n = compare(f, readerBinary, owner, diff);
				} catch (SQLException e) {
					diff.add(e.toString());
				}
				check(diff.isEmpty(), view + "." + f.column() + " by " + String.join(", ", f.keys())
						+ " equals the ledger (" + n + " figures, through getBigDecimal)", diff);
			}
			if (hasCurrency && compared == 0)
				check(false, view + ": its money is compared with the ledger",
						List.of("the view has a currency column but figures.sql has no figure for it"));
		}
		readerBinary.close();
		reader.close();
		owner.close();
	}
}
