# Installs the module the way Debian's libnginx-mod-* packages do:
#
#   /usr/lib/nginx/modules/ngx_http_token_scope_module.so
#   /usr/share/nginx/modules-available/mod-http-token-scope.conf
#       load_module modules/ngx_http_token_scope_module.so;
#   /etc/nginx/modules-enabled/50-mod-http-token-scope.conf
#       -> /usr/share/nginx/modules-available/mod-http-token-scope.conf
#
# Debian's /etc/nginx/nginx.conf includes modules-enabled/*.conf, and
# "modules/" is relative to nginx's prefix, /usr/share/nginx, whose
# "modules" is a symlink to /usr/lib/nginx/modules.
#
#   make install [DESTDIR=/staging]
#   make uninstall [DESTDIR=/staging]   removes exactly those three paths
#   make deb                            build/libnginx-mod-http-token-scope_*.deb
#
# Neither target reloads nginx: check with "nginx -t", then reload.

NGX_MODULES_DIR   ?= /usr/lib/nginx/modules
NGX_AVAILABLE_DIR ?= /usr/share/nginx/modules-available
NGX_ENABLED_DIR   ?= /etc/nginx/modules-enabled

TS_SO      := ngx_http_token_scope_module.so
TS_SNIPPET := mod-http-token-scope.conf
TS_LINK    := 50-mod-http-token-scope.conf

DEB_NAME    ?= libnginx-mod-http-token-scope
DEB_VERSION ?= 0.1.0
DEB_ARCH    := $(shell dpkg --print-architecture 2>/dev/null)
DEB_ROOT    := $(BUILD)/deb/root
DEB_FILE    := $(BUILD)/$(DEB_NAME)_$(DEB_VERSION)_$(DEB_ARCH).deb

.PHONY: install uninstall deb

install: $(MODULE)
	install -d $(DESTDIR)$(NGX_MODULES_DIR) $(DESTDIR)$(NGX_AVAILABLE_DIR) \
	    $(DESTDIR)$(NGX_ENABLED_DIR)
	# a new inode, then a rename: a running nginx keeps the old file mapped,
	# overwriting it in place would crash its workers
	install -m 0644 $(MODULE) $(DESTDIR)$(NGX_MODULES_DIR)/.$(TS_SO).tmp
	mv -f $(DESTDIR)$(NGX_MODULES_DIR)/.$(TS_SO).tmp \
	    $(DESTDIR)$(NGX_MODULES_DIR)/$(TS_SO)
	echo "load_module modules/$(TS_SO);" \
	    > $(DESTDIR)$(NGX_AVAILABLE_DIR)/$(TS_SNIPPET)
	chmod 0644 $(DESTDIR)$(NGX_AVAILABLE_DIR)/$(TS_SNIPPET)
	ln -sfn $(NGX_AVAILABLE_DIR)/$(TS_SNIPPET) \
	    $(DESTDIR)$(NGX_ENABLED_DIR)/$(TS_LINK)
	@echo "installed; check with \"nginx -t\", then reload nginx"

uninstall:
	rm -f $(DESTDIR)$(NGX_ENABLED_DIR)/$(TS_LINK) \
	    $(DESTDIR)$(NGX_AVAILABLE_DIR)/$(TS_SNIPPET) \
	    $(DESTDIR)$(NGX_MODULES_DIR)/$(TS_SO)

# a binary package with dpkg-deb, as Debian's module packages are laid out:
# it depends on the nginx ABI it was built against (nginx "Provides:"
# nginx-abi-...) and on the libraries dpkg-shlibdeps finds; the link in
# modules-enabled is managed by the maintainer scripts, as dh_nginx does
deb: $(MODULE)
	rm -rf $(BUILD)/deb
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_ROOT) \
	    > /dev/null
	rm $(DEB_ROOT)$(NGX_ENABLED_DIR)/$(TS_LINK)
	rmdir $(DEB_ROOT)$(NGX_ENABLED_DIR) $(DEB_ROOT)/etc/nginx $(DEB_ROOT)/etc
	strip --strip-unneeded --remove-section=.comment \
	    $(DEB_ROOT)$(NGX_MODULES_DIR)/$(TS_SO)
	install -d $(DEB_ROOT)/DEBIAN $(BUILD)/deb/shlibs/debian
	printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' \
	    $(DEB_NAME) $(DEB_NAME) > $(BUILD)/deb/shlibs/debian/control
	abi=$$(dpkg-query -W -f='$${Provides}' nginx \
	        | tr ',' '\n' | tr -d ' ' | grep '^nginx-abi-'); \
	test -n "$$abi" || { echo "no nginx-abi: is nginx installed?"; exit 1; }; \
	libs=$$(cd $(BUILD)/deb/shlibs \
	        && dpkg-shlibdeps -O $(CURDIR)/$(MODULE) 2>/dev/null \
	        | sed -n 's/^shlibs:Depends=//p'); \
	{ \
	    echo "Package: $(DEB_NAME)"; \
	    echo "Version: $(DEB_VERSION)"; \
	    echo "Architecture: $(DEB_ARCH)"; \
	    echo "Maintainer: nginx-token-scope <root@localhost>"; \
	    echo "Section: httpd"; \
	    echo "Priority: optional"; \
	    echo "Depends: $$abi, $$libs"; \
	    echo "Description: API token scope enforcement for nginx"; \
	    echo " Verifies JWT API tokens and enforces the categories each"; \
	    echo " location requires (ngx_http_token_scope_module)."; \
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
