SHELL := /bin/bash

# Builds the dynamic module against Debian's nginx-dev sources, the core
# unit tests, and runs the test suite.
#
# NGINX_SRC is the nginx source tree the module is built against: the
# version of the nginx binary that will load it (docs/install.md).  A tree
# with a conf_flags file (Debian's nginx-dev) is configured with Debian's
# arguments; any other (nginx.org's tarball) with --with-compat alone,
# which makes a module that loads into any nginx of that version built
# with --with-compat (Debian's and nginx.org's packages are).  A tree
# without ./configure (a clone of nginx's repository) runs auto/configure.
# Build for another tree into a directory of its own, or after make clean:
#
#   make NGINX_SRC=$HOME/nginx-1.30.0 BUILD=build/1.30

NGINX_SRC ?= /usr/share/nginx/src
BUILD     := build
MODULE    := $(BUILD)/ngx_http_token_scope_module.so

CORE_SRCS := src/ts_jwt.c src/ts_key.c src/ts_policy.c src/ts_ops.c \
             src/ts_secret.c src/ts_revoke.c src/ts_claims.c
CORE_HDRS := src/ts_core.h
GLUE_SRCS := src/ngx_http_token_scope_module.c \
             src/ngx_http_token_scope_conf.c \
             src/ngx_http_token_scope_response.c \
             src/ngx_http_token_scope_operations.c \
             src/ngx_http_token_scope_redis.c \
             src/ngx_http_token_scope_revocation.c \
             src/ngx_http_token_scope_hiredis.c \
             src/ngx_http_token_scope_opaque.c \
             src/ngx_http_token_scope_cache.c \
             src/ngx_http_token_scope_status.c \
             src/ngx_http_token_scope_shm.c \
             src/ngx_http_token_scope_variables.c \
             src/ngx_http_token_scope_keys.c \
             src/ngx_http_token_scope_facts.c \
             src/ngx_http_token_scope_decide.c \
             src/ngx_http_token_scope_hosts.c \
             src/ngx_http_token_scope_request.c \
             src/ngx_http_token_scope_claims.c \
             src/ngx_http_token_scope_jwks.c src/ngx_http_token_scope.h

CFLAGS    ?= -O2 -g
WARN      := -Wall -Wextra -Werror -Wno-unused-parameter
LIBS      := -lcrypto -ljansson

.PHONY: all module unit test clean

all: module

module: $(MODULE)

# nginx's configure in a copy of NGINX_SRC, with the tree's own arguments
# (above); the caller adds the compiler options and the module
NGX_CONFIGURE = if [ -f conf_flags ]; then . ./conf_flags; \
                else NGX_CONF_FLAGS=(--with-compat); fi \
                && if [ -x configure ]; then configure=./configure; \
                   else configure=auto/configure; fi \
                && $$configure "$${NGX_CONF_FLAGS[@]}"

# Debian's hardening flags (as its nginx module packages are built with),
# where dpkg-buildflags exists
HARDENING := DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get
NGX_CC_OPT ?= $(shell $(HARDENING) CFLAGS 2>/dev/null) \
              $(shell $(HARDENING) CPPFLAGS 2>/dev/null)
NGX_LD_OPT ?= $(shell $(HARDENING) LDFLAGS 2>/dev/null)

$(BUILD)/nginx/objs/Makefile: config Makefile
	rm -rf $(BUILD)/nginx
	mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && $(NGX_CONFIGURE) \
	    --with-cc-opt="$(strip $(NGX_CC_OPT))" \
	    --with-ld-opt="$(strip $(NGX_LD_OPT))" \
	    --add-dynamic-module=$(CURDIR) > ../configure.log

$(MODULE): $(BUILD)/nginx/objs/Makefile $(CORE_SRCS) $(CORE_HDRS) $(GLUE_SRCS)
	$(MAKE) -C $(BUILD)/nginx -f objs/Makefile modules
	# a new inode: a running nginx keeps the old file mapped
	cp $(BUILD)/nginx/objs/ngx_http_token_scope_module.so $@.tmp
	mv $@.tmp $@

unit: $(BUILD)/ts-unit

$(BUILD)/ts-unit: t/unit/ts_unit.c $(CORE_SRCS) $(CORE_HDRS)
	mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -Isrc -o $@ t/unit/ts_unit.c $(CORE_SRCS) $(LIBS)

test: module unit
	prove -r t/

clean:
	rm -rf $(BUILD)

# more targets (hardening, install) live in fragments of their own
include $(wildcard mk/*.mk)
