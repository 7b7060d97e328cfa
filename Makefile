# tokenledger: an outcome-based ledger for AI token spend, as a PostgreSQL extension

EXTENSION = tokenledger
EXTVERSION = $(shell grep default_version $(EXTENSION).control | sed -e "s/default_version[[:space:]]*=[[:space:]]*'\([^']*\)'/\1/")

MODULE_big = $(EXTENSION)
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
DATA = $(filter-out $(wildcard $(EXTENSION)--*--*.sql),$(wildcard $(EXTENSION)--*.sql)) \
	$(wildcard $(EXTENSION)--*--*.sql)

TESTS = $(wildcard sql/*.sql)
REGRESS = $(patsubst sql/%.sql,%,$(TESTS))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
PG_CPPFLAGS = -I$(srcdir)/src

EXTRA_CLEAN = results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# pg_regress and pgTAP in a throwaway cluster (pg_virtualenv, from
# postgresql-common); run after "make install".
.PHONY: test prove bench-types demo
test: all
	pg_virtualenv -o 'max_worker_processes=16' sh -c '$(MAKE) installcheck && $(MAKE) prove'

prove:
	pg_prove --failures test/*.sql

bench-types:
	pg_virtualenv sh -c 'psql -X -f bench/types.sql $(if $(ROWS),-v rows=$(ROWS))'
