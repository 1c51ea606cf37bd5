#!/usr/bin/perl

# make install / make uninstall into a DESTDIR: the module goes where
# Debian's nginx looks (/usr/lib/nginx/modules), with a load snippet in
# /usr/share/nginx/modules-available and its link in
# /etc/nginx/modules-enabled, as Debian's libnginx-mod-* packages lay them
# out, and the scripts, conf.d and docs in /usr/share/nginx-token-scope;
# nginx loads the module through the snippet; uninstall removes exactly
# those files, then the directories install created where they are empty,
# never those that were there before.  Then make deb, when dpkg-deb is
# there: the same files, a copyright file, and lintian's opinion of it.
#
# This installs Debian's build (build/): against another nginx the
# module is built and installed the same way (docs/install.md), but the
# package needs Debian's nginx (its nginx-abi-* dependency).

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
my $SHARE = '/usr/share/nginx-token-scope';
my $MANIFEST = "$SHARE/.make-install";
my $PACKAGE = 'libnginx-mod-http-token-scope';

# the operator's scripts; the others need the source tree
my @SCRIPTS = qw(token revoke opaque service-secret openapi-rules);
my @SCRIPT_LINKS = qw(unrevoke revoke-seller unrevoke-seller);

sub names { my ($glob) = @_; return map { m{([^/]+)$} } glob $glob }

my @CONFS = names("$ROOT/conf.d/*.conf");
my @DOCS = names("$ROOT/docs/*.md");

# what the package and make install have in common
my @SHARED = ($SO, $SNIPPET,
    (map { "$SHARE/scripts/$_" } @SCRIPTS, @SCRIPT_LINKS),
    (map { "$SHARE/conf.d/$_" } @CONFS),
    (map { "$SHARE/docs/$_" } @DOCS));
my @INSTALLED = sort @SHARED, $LINK, $MANIFEST;

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

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!\n";
    print $fh $text;
    close $fh;
}

sub mkdir_p { system('mkdir', '-p', @_) == 0 or die "mkdir -p @_ failed\n" }

# every file and symlink under the staging root, directories aside; and
# every directory

sub files {
    my ($root) = @_;
    $root //= $dest;
    my @found;
    find({ no_chdir => 1, wanted => sub {
        push @found, substr($_, length $root) if -l $_ || -f $_;
    } }, $root) if -d $root;
    return join ' ', sort @found;
}

sub dirs {
    my ($root) = @_;
    $root //= $dest;
    my @found;
    find({ no_chdir => 1, wanted => sub {
        push @found, substr($_, length $root) if -d $_ && !-l $_ && $_ ne $root;
    } }, $root) if -d $root;
    return join ' ', sort @found;
}

sub mode { my ($path) = @_; return sprintf('%04o', (stat $path)[2] & 07777) }


is(make('install', "DESTDIR=$dest"), 0, 'make install DESTDIR=... succeeds') or diag(slurp("$dir/make.log"));

ok(-f "$dest$SO", 'the module is installed in /usr/lib/nginx/modules');
ok(slurp("$dest$SO") eq slurp($BUILT), 'the installed module is the built one');
is(sprintf('%04o', (stat "$dest$SO")[2] & 07777), '0644', 'the module is installed with mode 0644');
is(slurp("$dest$SNIPPET"), "load_module modules/ngx_http_token_scope_module.so;\n", 'the load snippet in modules-available loads the module from modules/');
ok(-l "$dest$LINK", 'modules-enabled has a symlink for the module');
is(readlink("$dest$LINK"), $SNIPPET, 'the symlink points at the snippet by its absolute installed path');
is(files(), join(' ', @INSTALLED), 'make install installs the module, its snippet and link, the scripts, conf.d, docs and its record');

is(join(' ', map { mode("$dest$SHARE/scripts/$_") } @SCRIPTS), join(' ', ('0755') x @SCRIPTS), 'the scripts are executable');
is(join(' ', map { readlink("$dest$SHARE/scripts/$_") // '' } @SCRIPT_LINKS), join(' ', ('revoke') x @SCRIPT_LINKS), 'unrevoke, revoke-seller and unrevoke-seller are links to revoke, as in the tree');
is(join(' ', grep { slurp("$dest$SHARE/scripts/$_") ne slurp("$ROOT/scripts/$_") } @SCRIPTS), '', 'the scripts are the tree\'s');
is(join(' ', grep { slurp("$dest$SHARE/conf.d/$_") ne slurp("$ROOT/conf.d/$_") || mode("$dest$SHARE/conf.d/$_") ne '0644' } @CONFS), '', 'every conf.d/*.conf is installed, mode 0644');
is(join(' ', grep { slurp("$dest$SHARE/docs/$_") ne slurp("$ROOT/docs/$_") || mode("$dest$SHARE/docs/$_") ne '0644' } @DOCS), '', 'every docs/*.md is installed, mode 0644');
ok((grep { $_ eq 'install.md' } @DOCS), 'docs/install.md is among them');
ok(!-e "$dest$SHARE/scripts/demo" && !-e "$dest$SHARE/scripts/setup" && !-e "$dest$SHARE/scripts/bench", 'demo, setup and the benchmarks, which need the source tree, are not installed');

# in a new staging root every directory was created by make install
my $manifest = slurp("$dest$MANIFEST") // '';
my @recorded = sort map { m{^dir (.*)} } split /\n/, $manifest;
is(join(' ', @recorded), dirs(), 'the record lists every directory make install created');

my $inode = (stat "$dest$SO")[1];
is(make('install', "DESTDIR=$dest"), 0, 'make install again over an installed module succeeds');
isnt((stat "$dest$SO")[1], $inode, 'a reinstall replaces the module with a new file, never rewriting the one a running nginx has mapped');
is(files(), join(' ', @INSTALLED), 'a reinstall leaves exactly the same files');
is(join(' ', sort map { m{^dir (.*)} } split /\n/, slurp("$dest$MANIFEST") // ''), join(' ', @recorded), 'a reinstall keeps the record of the directories the first install created');


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
is(dirs(), '', 'and, in a root where make install made them all, no directory');
is(make('uninstall', "DESTDIR=$dest"), 0, 'make uninstall of nothing succeeds');


# the directories of a real system: nginx-common's stay, with what other
# packages put there; those make install created go, where empty

{
    my $root = "$dir/system";
    my $other_so = '/usr/lib/nginx/modules/ngx_stream_module.so';
    my $other_link = '/etc/nginx/modules-enabled/50-mod-stream.conf';

    mkdir_p("$root/etc/nginx/modules-enabled", "$root/usr/lib/nginx/modules",
            "$root/usr/share/nginx");
    write_file("$root$other_so", "another module\n");
    symlink '/usr/share/nginx/modules-available/mod-stream.conf', "$root$other_link";
    my $before = dirs($root);

    is(make('install', "DESTDIR=$root"), 0, 'make install into a root with nginx\'s directories');
    is(join(' ', sort map { m{^dir (.*)} } split /\n/, slurp("$root$MANIFEST") // ''),
       join(' ', "$SHARE", "$SHARE/conf.d", "$SHARE/docs", "$SHARE/scripts", '/usr/share/nginx/modules-available'),
       'the record names only the directories that were not there');

    # an administrator's file in a directory make install created
    write_file("$root/usr/share/nginx/modules-available/mod-local.conf", "# local\n");

    is(make('uninstall', "DESTDIR=$root"), 0, 'make uninstall there');
    is(files($root), join(' ', sort $other_so, $other_link, '/usr/share/nginx/modules-available/mod-local.conf'), 'only the other files are left');
    is(dirs($root), join(' ', sort split(/ /, $before), '/usr/share/nginx/modules-available'), 'the directories that were there stay, and one make install created but that is not empty; the others are gone');
    ok(!-e "$root$SHARE", "$SHARE is gone");
}


# an install made before the record existed: its files go, the
# directories stay (which of them were made for it is not known)

{
    my $root = "$dir/old";

    is(make('install', "DESTDIR=$root"), 0, 'make install');
    unlink "$root$MANIFEST";
    is(make('uninstall', "DESTDIR=$root"), 0, 'make uninstall without the record');
    is(files($root), '', 'removes every file all the same');
    ok(-d "$root/usr/lib/nginx/modules", 'and leaves the directories');
}


# the Debian package

SKIP: {
    skip 'no dpkg-deb', 19 unless grep { -x "$_/dpkg-deb" } split /:/, $ENV{PATH};
    skip 'nginx is not a Debian package here', 19
        unless `dpkg-query -W -f='\${Provides}' nginx 2>/dev/null` =~ /nginx-abi-/;

    my $deb = "$dir/test.deb";

    # a staging directory of its own, and a maintainer lintian accepts
    is(make('deb', "DEB_FILE=$deb", "DEB_DIR=$dir/deb",
            "'DEB_MAINTAINER=Test Packager <packager\@example.org>'"), 0, 'make deb succeeds') or diag(slurp("$dir/make.log"));

    my $contents = `dpkg-deb -c '$deb' 2>&1`;
    my %listed = map { m{ \.(/\S+?)/?(?: -> \S+)?$} ? ($1 => 1) : () } split /\n/, $contents;

    like($contents, qr{ \./usr/lib/nginx/modules/ngx_http_token_scope_module\.so$}m, 'the package has the module in /usr/lib/nginx/modules');
    like($contents, qr{ \./usr/share/nginx/modules-available/mod-http-token-scope\.conf$}m, 'the package has the load snippet');
    is(join(' ', grep { !$listed{$_} } @SHARED), '', 'the package has the scripts, conf.d and docs in /usr/share/nginx-token-scope');
    like($contents, qr{^-rwxr-xr-x .* \./usr/share/nginx-token-scope/scripts/revoke$}m, 'its scripts are executable');
    like($contents, qr{ \./usr/share/nginx-token-scope/scripts/unrevoke -> revoke$}m, 'and keep their links');
    ok($listed{"/usr/share/doc/$PACKAGE/copyright"}, 'the package has /usr/share/doc/PACKAGE/copyright');
    ok($listed{"/usr/share/doc/$PACKAGE/changelog.gz"}, 'and a changelog');
    ok(!$listed{$MANIFEST} && !$listed{'/etc'}, 'but not make install\'s record, nor anything in /etc: the link is the maintainer scripts\'');

    mkdir "$dir/x";
    system("dpkg-deb -x '$deb' '$dir/x'") == 0 or die "dpkg-deb -x failed\n";
    my $copyright = slurp("$dir/x/usr/share/doc/$PACKAGE/copyright") // '';
    like($copyright, qr{\AFormat: https://www\.debian\.org/doc/packaging-manuals/copyright-format/1\.0/\n}, 'the copyright file is in Debian\'s machine-readable format');
    like($copyright, qr{^Files: \*\nCopyright: .+\nLicense: \S+}m, 'with a Files: * paragraph, its copyright and license');
    is(slurp("$dir/x$SHARE/docs/operations.md"), slurp("$ROOT/docs/operations.md"), 'the docs are the tree\'s');

    my $control = `dpkg-deb -f '$deb' Depends 2>&1`;
    like($control, qr/\bnginx-abi-[\d.]+-\d+\b/, 'the package depends on the nginx ABI it was built for');
    like($control, qr/\blibjansson4\b.*\blibssl3\b|\blibssl3\b.*\blibjansson4\b/, 'the package depends on the libraries the module links');
    like(`dpkg-deb -f '$deb' Recommends 2>&1`, qr/\bredis-tools\b/, 'it recommends what the scripts use');

    my $postinst = `dpkg-deb --ctrl-tarfile '$deb' | tar -xOf - ./postinst 2>&1`;
    like($postinst, qr{ln -sfn /usr/share/nginx/modules-available/mod-http-token-scope\.conf}, 'the package links the snippet into modules-enabled on install');

    my $md5sums = `dpkg-deb --ctrl-tarfile '$deb' | tar -xOf - ./md5sums 2>&1`;
    like($md5sums, qr{^[0-9a-f]{32}  usr/share/doc/\Q$PACKAGE\E/copyright$}m, 'the package has md5sums');

    SKIP: {
        skip 'no lintian (apt-get install lintian)', 3
            unless grep { -x "$_/lintian" } split /:/, $ENV{PATH};

        my $out = `lintian --tag-display-limit 0 '$deb' 2>&1`;
        diag($out) if $out =~ /^[EW]: /m;

        unlike($out, qr/^E: /m, 'lintian reports no error');
        unlike($out, qr/^W: /m, 'nor any warning');
        unlike($out, qr/copyright/, 'nor anything about the copyright file');
    }
}

done_testing();
