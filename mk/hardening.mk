# Hardening: fuzzers, sanitizers and valgrind (docs/hardening.md).
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="token keys"]
#       builds each libFuzzer harness in fuzz/ with clang and ASan+UBSan,
#       runs it for FUZZ_SECONDS from the seeds in fuzz/corpus/NAME/, and
#       fails on a crash, a leak or a timeout; prints the executions
#   make unit-asan      the core's unit tests built with ASan+UBSan, with
#                       LeakSanitizer on
#   make test-asan      the module built with ASan+UBSan into build/asan/,
#                       then the whole t/ suite on Debian's nginx with the
#                       ASan runtime preloaded; fails on any report
#   make test-valgrind  a representative part of t/ with nginx under
#                       valgrind; fails on errors and on definite leaks
#                       from the module [VALGRIND_TESTS=... VALGRIND_JOBS=2]
#
# Needs clang and libclang-rt-14-dev (libFuzzer), gcc's libasan8 and
# valgrind.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= token keys ops revoke secrets claims

FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined
FUZZ_SUPPORT := fuzz/ts_fuzz.c fuzz/ts_fuzz.h

SAN_FLAGS    := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_BUILD   := $(BUILD)/asan
ASAN_NGINX   := $(BUILD)/asan-nginx
ASAN_MODULE  := $(ASAN_BUILD)/ngx_http_token_scope_module.so

# the runtime of the compiler nginx's configure picks (gcc): Debian's
# nginx is not instrumented, so the runtime must be loaded first
ASAN_RUNTIME  = $(shell $(CC) -print-file-name=libasan.so)

# no leak check in nginx (detect_leaks=0), because LeakSanitizer cannot
# tell the module's leaks from nginx's own there.  Tried with leaks on
# (t/faults.t, t/config.t, t/status.t, t/redis.t), it reports nginx's own
# memory only: every "nginx -s reload" leaks the 1 KB pool of the signal
# process, a failed "nginx -t" its whole cycle (~125 KB), and a worker
# started by a reload the old cycles it inherits (~110 KB).  Debian's
# nginx has no frame pointers, so every one of those stacks ends at
# ngx_memalign() or ngx_alloc(): a suppression for them would have to be
# "leak:ngx_memalign" and "leak:ngx_alloc", which would hide the module's
# own pool memory as well; and the module is unloaded (dlclose) before the
# exit-time check, so its frames could not be named anyway.  The module's
# leaks are found by test-valgrind, which keeps its symbols and tells its
# frames apart, the core's by unit-asan and the fuzzers (LeakSanitizer
# on).  UBSan stops at its first report
SAN_ENV      := ASAN_OPTIONS=detect_leaks=0 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# the token paths, the shared cache, reloads and the hiredis adapter;
# VALGRIND_JOBS test files at a time (CI: three files, two at a time)
VALGRIND_TESTS ?= t/jwt.t t/attacks.t t/claims.t t/badinput.t t/status.t \
                  t/faults.t t/redis.t
VALGRIND_JOBS  ?= 1

.PHONY: fuzz fuzz-build unit-asan test-asan test-valgrind


fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_SUPPORT) $(CORE_SRCS) $(CORE_HDRS)
	mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) -Isrc -Ifuzz \
	    -DTS_FUZZ_KEYS='"$(CURDIR)/fuzz/token-keys.jwks"' \
	    -o $@ $< fuzz/ts_fuzz.c $(CORE_SRCS) $(LIBS)

# each harness in turn; new inputs go to build/fuzz/corpus/NAME (kept
# between runs), fuzz/corpus/NAME is only read; a failing input is saved
# as build/fuzz/NAME/crash-* (or leak-*, timeout-*, oom-*).
# Leaks: libFuzzer runs LeakSanitizer after every input that allocated
# more than it freed, and ASan's at exit; both are on by default, and are
# turned on here explicitly so that a detect_leaks=0 in the caller's
# ASAN_OPTIONS (as test-asan sets for nginx) cannot switch them off
FUZZ_ENV     := ASAN_OPTIONS="$${ASAN_OPTIONS:+$$ASAN_OPTIONS:}detect_leaks=1" \
                UBSAN_OPTIONS=print_stacktrace=1

fuzz: fuzz-build
	@failed=; \
	for h in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$h $(FUZZ_BUILD)/$$h; \
	    if $(FUZZ_ENV) $(FUZZ_BUILD)/fuzz_$$h \
	        -max_total_time=$(FUZZ_SECONDS) -detect_leaks=1 \
	        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/$$h/ \
	        $(FUZZ_BUILD)/corpus/$$h fuzz/corpus/$$h \
	        > $(FUZZ_BUILD)/$$h.log 2>&1; \
	    then \
	        result=ok; \
	    else \
	        result=FAILED; failed="$$failed $$h"; \
	        grep -A40 -E '^==[0-9]+==|^SUMMARY|runtime error|invariant' \
	            $(FUZZ_BUILD)/$$h.log | head -60; \
	    fi; \
	    execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' \
	                 $(FUZZ_BUILD)/$$h.log); \
	    cov=$$(grep -Eo 'cov: [0-9]+' $(FUZZ_BUILD)/$$h.log | tail -1); \
	    corpus=$$(ls $(FUZZ_BUILD)/corpus/$$h | wc -l); \
	    echo "fuzz_$$h: $$result after $${execs:-?} executions" \
	         "(limit $(FUZZ_SECONDS) s), $${cov:-cov: ?}," \
	         "$$corpus inputs kept, log $(FUZZ_BUILD)/$$h.log"; \
	done; \
	if [ -n "$$failed" ]; then \
	    echo "fuzz: FAILED:$$failed; inputs in $(FUZZ_BUILD)/NAME/"; \
	    exit 1; \
	fi


# the unit tests free what they load: LeakSanitizer is on, and a leak
# (reported when ts-unit exits) fails the run like any other report
unit-asan: $(ASAN_BUILD)/ts-unit
	ASAN_OPTIONS="$${ASAN_OPTIONS:+$$ASAN_OPTIONS:}detect_leaks=1" \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    prove $(ASAN_BUILD)/ts-unit

$(ASAN_BUILD)/ts-unit: t/unit/ts_unit.c $(CORE_SRCS) $(CORE_HDRS)
	mkdir -p $(ASAN_BUILD)
	$(CC) -g -O1 $(SAN_FLAGS) -fno-sanitize-recover=undefined $(WARN) \
	    -Isrc -o $@ t/unit/ts_unit.c $(CORE_SRCS) $(LIBS)


# a second nginx tree, configured as the first (the same module signature)
# but compiling with the sanitizers; only its "modules" target is built
$(ASAN_NGINX)/objs/Makefile: config Makefile
	rm -rf $(ASAN_NGINX)
	mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(ASAN_NGINX)
	cd $(ASAN_NGINX) && $(NGX_CONFIGURE) \
	    --with-cc-opt="-g -O1 $(SAN_FLAGS)" \
	    --with-ld-opt="$(SAN_FLAGS)" \
	    --add-dynamic-module=$(CURDIR) > ../asan-configure.log

$(ASAN_MODULE): $(ASAN_NGINX)/objs/Makefile $(CORE_SRCS) $(CORE_HDRS) \
                $(GLUE_SRCS)
	$(MAKE) -C $(ASAN_NGINX) -f objs/Makefile modules
	mkdir -p $(ASAN_BUILD)
	cp $(ASAN_NGINX)/objs/ngx_http_token_scope_module.so $@.tmp
	mv $@.tmp $@

# the test files run two at a time; the harness checks each error log for
# sanitizer reports (nginx sends its stderr to the error log); t/unit.t
# and t/install.t use the ordinary builds
test-asan: unit-asan $(ASAN_MODULE) module unit
	test -f "$(ASAN_RUNTIME)"
	$(SAN_ENV) TEST_NGINX_MODULE=$(CURDIR)/$(ASAN_MODULE) \
	TEST_NGINX_PRELOAD=$(ASAN_RUNTIME) \
	    prove -j2 -r t/


test-valgrind: module
	TEST_NGINX_VALGRIND=1 prove -j$(VALGRIND_JOBS) $(VALGRIND_TESTS)
