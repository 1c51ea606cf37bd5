#!/usr/bin/perl

# make install / make uninstall into a DESTDIR: the module goes where
# Debian's nginx looks (/usr/lib/nginx/modules), with a load snippet in
# /usr/share/nginx/modules-available and its link in
# /etc/nginx/modules-enabled, as Debian's libnginx-mod-* packages lay them
# out; nginx loads the module through the snippet; uninstall removes
# exactly those files.  Then make deb, when dpkg-deb is there.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Find qw(find);
use File::Temp qw(tempdir);
use Test::More;

my $ROOT = "$FindBin::Bin/..";
my $BUILT = "$ROOT/build/ngx_http_token_scope_module.so";
my $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';

my $SO = '/usr/lib/nginx/modules/ngx_http_token_scope_module.so';
my $SNIPPET = '/usr/share/nginx/modules-available/mod-http-token-scope.conf';
my $LINK = '/etc/nginx/modules-enabled/50-mod-http-token-scope.conf';

plan(skip_all => 'no make') unless grep { -x "$_/make" } split /:/, $ENV{PATH};
plan(skip_all => "module not built: $BUILT (run make)") unless -f $BUILT;

my $dir = tempdir('token-scope-install-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $dest = "$dir/root";

sub make {
    my (@args) = @_;
    system("make -s -C '$ROOT' @args >'$dir/make.log' 2>&1");
    return $? >> 8;
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    binmode $fh;
    local $/;
    return scalar <$fh>;
}

# every file and symlink under the staging root, directories aside

sub files {
    my @found;
    find({ no_chdir => 1, wanted => sub {
        push @found, substr($_, length $dest) if -l $_ || -f $_;
    } }, $dest) if -d $dest;
    return join ' ', sort @found;
}


is(make('install', "DESTDIR=$dest"), 0, 'make install DESTDIR=... succeeds') or diag(slurp("$dir/make.log"));

ok(-f "$dest$SO", 'the module is installed in /usr/lib/nginx/modules');
ok(slurp("$dest$SO") eq slurp($BUILT), 'the installed module is the built one');
is(sprintf('%04o', (stat "$dest$SO")[2] & 07777), '0644', 'the module is installed with mode 0644');
is(slurp("$dest$SNIPPET"), "load_module modules/ngx_http_token_scope_module.so;\n", 'the load snippet in modules-available loads the module from modules/');
ok(-l "$dest$LINK", 'modules-enabled has a symlink for the module');
is(readlink("$dest$LINK"), $SNIPPET, 'the symlink points at the snippet by its absolute installed path');
is(files(), join(' ', sort $SO, $SNIPPET, $LINK), 'make install installs exactly these three files');

my $inode = (stat "$dest$SO")[1];
is(make('install', "DESTDIR=$dest"), 0, 'make install again over an installed module succeeds');
isnt((stat "$dest$SO")[1], $inode, 'a reinstall replaces the module with a new file, never rewriting the one a running nginx has mapped');
is(files(), join(' ', sort $SO, $SNIPPET, $LINK), 'a reinstall leaves exactly the same three files');


# nginx loads the installed module through the snippet; "modules/" is
# relative to the prefix, a link to the modules directory as in Debian

SKIP: {
    skip "no nginx binary at $NGINX", 2 unless -x $NGINX;

    mkdir "$dir/prefix";
    symlink "$dest/usr/lib/nginx/modules", "$dir/prefix/modules";

    open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!\n";
    print $fh <<"EOF";
include $dest$SNIPPET;

pid $dir/nginx.pid;
error_log $dir/error.log;

events {
}

http {
    access_log off;

    server {
        listen 127.0.0.1:1;

        location = /status {
            token_scope_status;
        }
    }
}
EOF
    close $fh;

    my $out = `'$NGINX' -t -p '$dir/prefix/' -e '$dir/error.log' -c '$dir/nginx.conf' 2>&1`;

    is($? >> 8, 0, 'nginx -t loads the installed module through the load snippet') or diag($out);
    like($out, qr/test is successful/, 'nginx accepts the module\'s directives');
}


is(make('uninstall', "DESTDIR=$dest"), 0, 'make uninstall DESTDIR=... succeeds') or diag(slurp("$dir/make.log"));

ok(!-e "$dest$SO", 'the module is removed');
ok(!-e "$dest$SNIPPET", 'the load snippet is removed');
ok(!-l "$dest$LINK", 'the modules-enabled symlink is removed');
is(files(), '', 'make uninstall leaves no file behind');
ok(-d "$dest/etc/nginx/modules-enabled", 'the directories stay: on a real system they belong to nginx-common');
is(make('uninstall', "DESTDIR=$dest"), 0, 'make uninstall of nothing succeeds');


# the Debian package

SKIP: {
    skip 'no dpkg-deb', 6 unless grep { -x "$_/dpkg-deb" } split /:/, $ENV{PATH};
    skip 'nginx is not a Debian package here', 6
        unless `dpkg-query -W -f='\${Provides}' nginx 2>/dev/null` =~ /nginx-abi-/;

    my $deb = "$dir/test.deb";

    is(make('deb', "DEB_FILE=$deb"), 0, 'make deb succeeds') or diag(slurp("$dir/make.log"));

    my $contents = `dpkg-deb -c '$deb' 2>&1`;
    like($contents, qr{ \./usr/lib/nginx/modules/ngx_http_token_scope_module\.so$}m, 'the package has the module in /usr/lib/nginx/modules');
    like($contents, qr{ \./usr/share/nginx/modules-available/mod-http-token-scope\.conf$}m, 'the package has the load snippet');

    my $control = `dpkg-deb -f '$deb' Depends 2>&1`;
    like($control, qr/\bnginx-abi-[\d.]+-\d+\b/, 'the package depends on the nginx ABI it was built for');
    like($control, qr/\blibjansson4\b.*\blibssl3\b|\blibssl3\b.*\blibjansson4\b/, 'the package depends on the libraries the module links');

    my $postinst = `dpkg-deb --ctrl-tarfile '$deb' | tar -xOf - ./postinst 2>&1`;
    like($postinst, qr{ln -sfn /usr/share/nginx/modules-available/mod-http-token-scope\.conf}, 'the package links the snippet into modules-enabled on install');
}

done_testing();
