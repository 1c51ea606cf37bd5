# Installs the module the way Debian's libnginx-mod-* packages do, with
# the operator's files next to it:
#
#   /usr/lib/nginx/modules/ngx_http_token_scope_module.so
#   /usr/share/nginx/modules-available/mod-http-token-scope.conf
#       load_module modules/ngx_http_token_scope_module.so;
#   /etc/nginx/modules-enabled/50-mod-http-token-scope.conf
#       -> /usr/share/nginx/modules-available/mod-http-token-scope.conf
#   /usr/share/nginx-token-scope/scripts/   token, revoke (also as unrevoke,
#       revoke-seller, unrevoke-seller), opaque, service-secret,
#       openapi-rules
#   /usr/share/nginx-token-scope/conf.d/    the files to include, to copy
#       to /etc/nginx/token-scope/ and adapt
#   /usr/share/nginx-token-scope/docs/      the documentation
#
# Debian's /etc/nginx/nginx.conf includes modules-enabled/*.conf, and
# "modules/" is relative to nginx's prefix, /usr/share/nginx, whose
# "modules" is a symlink to /usr/lib/nginx/modules (docs/install.md).
#
#   make install [DESTDIR=/staging]
#       also writes /usr/share/nginx-token-scope/.make-install: the files
#       it installed and the directories it had to create
#   make uninstall [DESTDIR=/staging]
#       removes those files, then those directories where they are empty;
#       directories that were there before (nginx-common's) stay
#   make deb [DEB_VERSION=...] [DEB_MAINTAINER="Name <address>"]
#       build/libnginx-mod-http-token-scope_VERSION_ARCH.deb: the same
#       files, less the modules-enabled link (its postinst makes it), plus
#       /usr/share/doc/libnginx-mod-http-token-scope/{copyright,changelog.gz}
#
# Neither target reloads nginx: check with "nginx -t", then reload.  On a
# system where the package is installed, install and uninstall (without
# DESTDIR) refuse: use apt.

NGX_MODULES_DIR   ?= /usr/lib/nginx/modules
NGX_AVAILABLE_DIR ?= /usr/share/nginx/modules-available
NGX_ENABLED_DIR   ?= /etc/nginx/modules-enabled
TS_SHARE_DIR      ?= /usr/share/nginx-token-scope

TS_SO       := ngx_http_token_scope_module.so
TS_SNIPPET  := mod-http-token-scope.conf
TS_LINK     := 50-mod-http-token-scope.conf
TS_MANIFEST := $(TS_SHARE_DIR)/.make-install

# the operator's scripts; demo, setup and the benchmarks need the source
# tree and stay there
TS_SCRIPTS      := token revoke opaque service-secret openapi-rules
TS_SCRIPT_LINKS := unrevoke revoke-seller unrevoke-seller
TS_CONFS        := $(sort $(notdir $(wildcard conf.d/*.conf)))
TS_DOCS         := $(sort $(notdir $(wildcard docs/*.md)))

TS_DIRS  := $(NGX_MODULES_DIR) $(NGX_AVAILABLE_DIR) $(NGX_ENABLED_DIR) \
            $(TS_SHARE_DIR)/scripts $(TS_SHARE_DIR)/conf.d $(TS_SHARE_DIR)/docs
TS_FILES := $(NGX_MODULES_DIR)/$(TS_SO) $(NGX_AVAILABLE_DIR)/$(TS_SNIPPET) \
            $(NGX_ENABLED_DIR)/$(TS_LINK) \
            $(addprefix $(TS_SHARE_DIR)/scripts/,$(TS_SCRIPTS) $(TS_SCRIPT_LINKS)) \
            $(addprefix $(TS_SHARE_DIR)/conf.d/,$(TS_CONFS)) \
            $(addprefix $(TS_SHARE_DIR)/docs/,$(TS_DOCS))

DEB_NAME       ?= libnginx-mod-http-token-scope
DEB_VERSION    ?= 0.1.0
# the packager: DEB_MAINTAINER="Name <address>", or Debian's DEBFULLNAME
# and DEBEMAIL; the fallback is no address (lintian says so)
DEB_MAINTAINER ?= $(if $(DEBEMAIL),$(or $(DEBFULLNAME),nginx-token-scope) <$(DEBEMAIL)>,nginx-token-scope <root@localhost>)
DEB_ARCH       := $(shell dpkg --print-architecture 2>/dev/null)
DEB_DIR        ?= $(BUILD)/deb
DEB_ROOT        = $(DEB_DIR)/root
DEB_DOC         = /usr/share/doc/$(DEB_NAME)
DEB_FILE       ?= $(BUILD)/$(DEB_NAME)_$(DEB_VERSION)_$(DEB_ARCH).deb

.PHONY: install uninstall deb install-check-package

# a packaged install is dpkg's to change
install-check-package:
	@if [ -z "$(DESTDIR)" ] && dpkg-query -W -f='$${Status}' $(DEB_NAME) \
	        2>/dev/null | grep -q ' installed$$'; then \
	    echo "$(DEB_NAME) is installed as a package: upgrade or remove" \
	         "it with apt, not with make"; \
	    exit 1; \
	fi

# the directories that are not there yet are recorded, each parent before
# its children; the module is copied to a new inode, then renamed: a
# running nginx keeps the old file mapped, and overwriting it in place
# would crash its workers
install: $(MODULE) install-check-package
	@set -e; \
	root='$(DESTDIR)'; \
	list=$$(mktemp); trap 'rm -f "$$list"' EXIT; \
	for dir in $(TS_DIRS); do \
	    path=; \
	    for part in $$(echo "$$dir" | tr / ' '); do \
	        path=$$path/$$part; \
	        [ -d "$$root$$path" ] || echo "dir $$path" >> "$$list"; \
	    done; \
	    install -d "$$root$$dir"; \
	done; \
	install -m 0644 $(MODULE) "$$root$(NGX_MODULES_DIR)/.$(TS_SO).tmp"; \
	mv -f "$$root$(NGX_MODULES_DIR)/.$(TS_SO).tmp" \
	    "$$root$(NGX_MODULES_DIR)/$(TS_SO)"; \
	echo "load_module modules/$(TS_SO);" \
	    > "$$root$(NGX_AVAILABLE_DIR)/$(TS_SNIPPET)"; \
	chmod 0644 "$$root$(NGX_AVAILABLE_DIR)/$(TS_SNIPPET)"; \
	ln -sfn $(NGX_AVAILABLE_DIR)/$(TS_SNIPPET) \
	    "$$root$(NGX_ENABLED_DIR)/$(TS_LINK)"; \
	for f in $(TS_SCRIPTS); do \
	    install -m 0755 scripts/$$f "$$root$(TS_SHARE_DIR)/scripts/$$f"; \
	done; \
	for f in $(TS_SCRIPT_LINKS); do \
	    ln -sfn revoke "$$root$(TS_SHARE_DIR)/scripts/$$f"; \
	done; \
	for f in $(TS_CONFS); do \
	    install -m 0644 conf.d/$$f "$$root$(TS_SHARE_DIR)/conf.d/$$f"; \
	done; \
	for f in $(TS_DOCS); do \
	    install -m 0644 docs/$$f "$$root$(TS_SHARE_DIR)/docs/$$f"; \
	done; \
	for f in $(TS_FILES); do echo "file $$f" >> "$$list"; done; \
	manifest="$$root$(TS_MANIFEST)"; \
	if [ -f "$$manifest" ]; then grep -v '^#' "$$manifest" >> "$$list"; fi; \
	{ \
	    echo '# written by "make install" of nginx-token-scope: what'; \
	    echo '# "make uninstall" removes (files, and directories if empty)'; \
	    sort -u "$$list"; \
	} > "$$manifest.tmp"; \
	chmod 0644 "$$manifest.tmp"; \
	mv -f "$$manifest.tmp" "$$manifest"
	@echo "installed; check with \"nginx -t\", then reload nginx"

# the files install installed (per its record, and those it installs now,
# for an install made before the record existed), then the directories it
# created, deepest first, where empty
uninstall: install-check-package
	@set -e; \
	root='$(DESTDIR)'; \
	manifest="$$root$(TS_MANIFEST)"; \
	recorded=; dirs=; \
	if [ -f "$$manifest" ]; then \
	    recorded=$$(sed -n 's/^file //p' "$$manifest"); \
	    dirs=$$(sed -n 's/^dir //p' "$$manifest" | sort -ru); \
	fi; \
	for f in $(TS_FILES) $$recorded; do \
	    case "$$f" in \
	    $(TS_SHARE_DIR)/*/*|$(NGX_MODULES_DIR)/$(TS_SO)) ;; \
	    $(NGX_AVAILABLE_DIR)/$(TS_SNIPPET)|$(NGX_ENABLED_DIR)/$(TS_LINK)) ;; \
	    *) continue ;; \
	    esac; \
	    rm -f "$$root$$f"; \
	done; \
	rm -f "$$manifest"; \
	for d in $$dirs; do \
	    rmdir "$$root$$d" 2>/dev/null || true; \
	done

# a binary package with dpkg-deb, as Debian's module packages are laid out:
# it depends on the nginx ABI it was built against (nginx "Provides:"
# nginx-abi-...) and on the libraries dpkg-shlibdeps finds; the link in
# modules-enabled is managed by the maintainer scripts, as dh_nginx does.
# The scripts need Python, redis-cli and OpenSSL's Python bindings: they
# are recommended, not required, since nginx needs none of them
deb: $(MODULE)
	rm -rf $(DEB_DIR)
	$(MAKE) --no-print-directory install DESTDIR=$(abspath $(DEB_ROOT)) \
	    > /dev/null
	rm $(DEB_ROOT)$(TS_MANIFEST)
	rm $(DEB_ROOT)$(NGX_ENABLED_DIR)/$(TS_LINK)
	rmdir $(DEB_ROOT)$(NGX_ENABLED_DIR) $(DEB_ROOT)/etc/nginx $(DEB_ROOT)/etc
	strip --strip-unneeded --remove-section=.comment \
	    $(DEB_ROOT)$(NGX_MODULES_DIR)/$(TS_SO)
	install -d $(DEB_ROOT)$(DEB_DOC) $(DEB_ROOT)/usr/share/lintian/overrides
	install -m 0644 packaging/copyright $(DEB_ROOT)$(DEB_DOC)/copyright
	install -m 0644 packaging/lintian-overrides \
	    $(DEB_ROOT)/usr/share/lintian/overrides/$(DEB_NAME)
	# a native package's changelog, one entry for this build
	when=$$(date -R -u -d @$${SOURCE_DATE_EPOCH:-$$(git log -1 \
	        --format=%ct 2>/dev/null || date +%s)}); \
	rev=$$(git describe --always --dirty 2>/dev/null || echo unknown); \
	{ \
	    echo "$(DEB_NAME) ($(DEB_VERSION)) unstable; urgency=medium"; \
	    echo; \
	    echo "  * Built from nginx-token-scope $$rev."; \
	    echo; \
	    echo " -- $(DEB_MAINTAINER)  $$when"; \
	} | gzip -9n > $(DEB_ROOT)$(DEB_DOC)/changelog.gz
	chmod 0644 $(DEB_ROOT)$(DEB_DOC)/changelog.gz
	install -d $(DEB_ROOT)/DEBIAN $(DEB_DIR)/shlibs/debian
	cd $(DEB_ROOT) && find usr -type f | LC_ALL=C sort | xargs md5sum \
	    > DEBIAN/md5sums
	chmod 0644 $(DEB_ROOT)/DEBIAN/md5sums
	printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' \
	    $(DEB_NAME) $(DEB_NAME) > $(DEB_DIR)/shlibs/debian/control
	abi=$$(dpkg-query -W -f='$${Provides}' nginx \
	        | tr ',' '\n' | tr -d ' ' | grep '^nginx-abi-'); \
	test -n "$$abi" || { echo "no nginx-abi: is nginx installed?"; exit 1; }; \
	libs=$$(cd $(DEB_DIR)/shlibs \
	        && dpkg-shlibdeps -O $(abspath $(MODULE)) 2>/dev/null \
	        | sed -n 's/^shlibs:Depends=//p'); \
	size=$$(du -k -s --exclude=DEBIAN $(DEB_ROOT) | cut -f1); \
	{ \
	    echo "Package: $(DEB_NAME)"; \
	    echo "Version: $(DEB_VERSION)"; \
	    echo "Architecture: $(DEB_ARCH)"; \
	    echo "Maintainer: $(DEB_MAINTAINER)"; \
	    echo "Installed-Size: $$size"; \
	    echo "Depends: $$abi, $$libs"; \
	    echo "Recommends: python3, python3-cryptography, redis-tools"; \
	    echo "Suggests: python3-yaml"; \
	    echo "Section: httpd"; \
	    echo "Priority: optional"; \
	    echo "Description: API token scope enforcement for nginx"; \
	    echo " ngx_http_token_scope_module verifies JWT and opaque API tokens"; \
	    echo " and enforces the categories and scopes each location requires,"; \
	    echo " with revocation through Redis."; \
	    echo " ."; \
	    echo " The scripts that mint and revoke tokens and generate operation"; \
	    echo " catalogues, the example configuration and the documentation"; \
	    echo " are in $(TS_SHARE_DIR)."; \
	} > $(DEB_ROOT)/DEBIAN/control
	# the link is made on a fresh install and again on a reinstall after
	# "remove", never over an administrator's "rm" of it (dh_nginx's rule)
	printf '%s\n' '#!/bin/sh' 'set -e' \
	    'enable=$(NGX_ENABLED_DIR)/$(TS_LINK)' \
	    'removed=false' \
	    'if [ -L "$$enable.removed" ]; then' \
	    '    rm -f "$$enable.removed"; removed=true' \
	    'fi' \
	    'if [ "$$1" = configure ] && { [ -z "$$2" ] || $$removed; }; then' \
	    '    ln -sfn $(NGX_AVAILABLE_DIR)/$(TS_SNIPPET) "$$enable"' \
	    'fi' > $(DEB_ROOT)/DEBIAN/postinst
	printf '%s\n' '#!/bin/sh' 'set -e' \
	    'enable=$(NGX_ENABLED_DIR)/$(TS_LINK)' \
	    'case "$$1" in' \
	    'remove)' \
	    '    if [ -L "$$enable" ]; then mv -f "$$enable" "$$enable.removed"; fi' \
	    '    ;;' \
	    'purge)' \
	    '    rm -f "$$enable" "$$enable.removed"' \
	    '    ;;' \
	    'esac' > $(DEB_ROOT)/DEBIAN/postrm
	chmod 0755 $(DEB_ROOT)/DEBIAN/postinst $(DEB_ROOT)/DEBIAN/postrm
	dpkg-deb --root-owner-group --build $(DEB_ROOT) $(DEB_FILE)
