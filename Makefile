# tokenledger: an outcome-based ledger for AI token spend, as a PostgreSQL extension

EXTENSION = tokenledger

# plain "make" builds the module, as PGXS expects
.DEFAULT_GOAL := all

MODULE_big = $(EXTENSION)
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
DATA = $(wildcard $(EXTENSION)--*.sql)

TESTS = $(wildcard sql/*.sql)
REGRESS = $(patsubst sql/%.sql,%,$(TESTS))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
PG_CPPFLAGS = -I$(srcdir)/src

EXTRA_CLEAN = results regression.diffs regression.out

# PostgreSQL 15 first; any pg_config on the PATH otherwise
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
# the server headers come with postgresql-server-dev-NN, not with the server
HAVE_HEADERS := $(wildcard $(shell $(PG_CONFIG) --includedir-server 2>/dev/null)/postgres.h)

# sudo for installing, unless run as root
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: deps lint test prove demo dashboard bench-types bench-ingest bench-scale bench-budget bench-views bench-instructions dist package test-package

deps:
	sh scripts/install-deps.sh

# the PGXN distribution: tokenledger-<version>.zip of the committed HEAD
# (git archive); fails unless META.json, the control file and debian/changelog
# agree on the version
dist:
	sh scripts/dist.sh

# the Debian package, built as apt.postgresql.org builds extensions (pg_buildext
# through dh --with pgxs_loop, the regression suite run against the package's
# files): ../postgresql-15-tokenledger_<version>_<arch>.deb.  Installs the build
# dependencies debian/control names when missing; ends with make clean.
package:
	dpkg-checkbuilddeps >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q ./ >/dev/null; }
	dpkg-buildpackage -us -uc -b

# the package built, installed with apt and used on a freshly made machine
# (../shared/tools/fresh-machine; it takes the committed HEAD)
test-package:
	$(SUDO) sh test/package.sh

# clang-format (config in .clang-format) and cppcheck must have nothing to say
lint:
	clang-format --dry-run -Werror src/*.c src/*.h
	cppcheck --error-exitcode=1 --quiet --std=c99 --inline-suppr \
		--enable=warning,style,performance,portability \
		--suppress=missingIncludeSystem --suppress=toomanyconfigs \
		-I src -I $(shell $(PG_CONFIG) --includedir-server) src/*.c

ifeq ($(and $(PGXS),$(HAVE_HEADERS)),)
# A fresh machine has no server headers yet: install them, then go on.
all install installcheck test demo dashboard bench-types bench-ingest bench-scale bench-budget bench-views bench-instructions:
	sh scripts/install-deps.sh
	$(MAKE) PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config $@
else
include $(PGXS)

# pg_regress and pgTAP in a throwaway cluster (pg_virtualenv)
test: all
	sh scripts/install-deps.sh test
	$(SUDO) $(MAKE) install
	pg_virtualenv -o 'max_worker_processes=16' -o 'max_prepared_transactions=10' sh -c '$(MAKE) installcheck && $(MAKE) prove'

prove:
	pg_prove --failures test/*.sql
	prove -e /usr/bin/python3 test/client.py test/notify.py test/sessions.py test/budget_stress.py test/roles.py test/rollups.py test/upgrade.py test/partitions.py test/dump_restore.py test/fuzz.py test/crash.py test/slots.py test/bounds.py test/bi_psycopg.py test/shards.py test/citus.py
	prove -e sh test/concurrency.sh test/jdbc.sh test/dashboard.sh test/pgxn.sh test/cron.sh

# the main job: a year of a mid-size company's AI spend, and its report
demo: all
	$(SUDO) $(MAKE) install
	pg_virtualenv sh -c 'psql -X -q -v ON_ERROR_STOP=1 -f demo/generate.sql && psql -X -q -v ON_ERROR_STOP=1 -f demo/report.sql'

# the demo's year as the CFO dashboard: static pages in dashboard/dist, built by
# Observable Framework from the views, read as a tokenledger_reader
dashboard: all
	sh scripts/install-deps.sh dashboard
	$(SUDO) $(MAKE) install
	sh dashboard/npm-ci.sh
	pg_virtualenv sh -c 'psql -X -q -v ON_ERROR_STOP=1 -f demo/generate.sql && sh dashboard/build.sh'
	@echo 'the dashboard is in dashboard/dist: open dashboard/dist/index.html through a web server, e.g. (cd dashboard/dist && python3 -m http.server)'

bench-types: all
	$(SUDO) $(MAKE) install
	pg_virtualenv sh -c 'psql -X -f bench/types.sql $(if $(ROWS),-v rows=$(ROWS))'

bench-budget: all
	$(SUDO) $(MAKE) install
	pg_virtualenv sh -c 'psql -X -f bench/budget.sql $(if $(LARGE),-v large=$(LARGE))'

bench-ingest: all
	$(SUDO) $(MAKE) install
	pg_virtualenv sh bench/ingest.sh

# the ledger partitioned by month against one big table, and two
# postgres_fdw shards against one node (ROWS: calls, default 5M)
bench-scale: all
	$(SUDO) $(MAKE) install
	pg_virtualenv sh bench/scale.sh

bench-views: all
	$(SUDO) $(MAKE) install
	pg_virtualenv sh -c 'psql -X -f bench/views.sql $(if $(ROWS),-v rows=$(ROWS))'

bench-instructions: all
	$(SUDO) $(MAKE) install
	sh bench/instructions.sh
endif
