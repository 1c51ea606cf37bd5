#!/usr/bin/perl

# The shipped configuration files (conf.d/) pass "nginx -t" as the
# operations guide installs them, under /etc/nginx/token-scope/ (here a
# copy in the test directory), and a typo in the host table fails it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test;

my $t = TokenScope::Test->new();

my $etc = $t->testdir . '/etc';
mkdir $etc;
mkdir "$etc/$_" for qw(keys tls logs);

# the files as installed, their paths pointing into the test directory
sub install_conf_d {
    my (%edit) = @_;

    for my $path (glob "$TokenScope::Test::ROOT/conf.d/*.conf") {
        my ($name) = $path =~ m{([^/]+)$};
        my $text = $t->read_file($path);

        $text =~ s{/etc/nginx/token-scope}{$etc}g;
        $text =~ s{/var/log/nginx}{$etc/logs}g;
        $text = $edit{$name}->($text) if $edit{$name};

        $t->write_file("$etc/$name", $text);
    }
}

# the key and certificate wb-servers.conf names
$t->keygen('ES256', '20250520v1');
$t->write_file("$etc/keys/20250520v1.pem",
               $t->read_file($t->keydir . '/20250520v1.pem'));

my ($rc, $out, $err) = $t->run_cmd([
    'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
    'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj',
    '/CN=wildberries.ru', '-keyout', "$etc/tls/wildberries.ru.key",
    '-out', "$etc/tls/wildberries.ru.crt" ]);
die "openssl req failed: $err" if $rc != 0;

sub check {
    my ($includes) = @_;

    $t->write_config(<<"EOF");
http {
    %%TEST_GLOBALS_HTTP%%

$includes
}
EOF

    return $t->test_config();
}


install_conf_d();

my ($status, $output) = check(<<"EOF");
    include $etc/audit.conf;
    include $etc/ratelimit.conf;
    include $etc/wb-servers.conf;
EOF
is($status, 0, 'wb-servers.conf with audit.conf and ratelimit.conf passes nginx -t') or diag($output);

($status, $output) = check("    include $etc/ecwid-example.conf;\n");
is($status, 0, 'ecwid-example.conf passes nginx -t') or diag($output);

like($t->read_file("$etc/wb-servers.conf"), qr/include\s+\Q$etc\E\/wb-hosts\.conf;/, 'wb-servers.conf takes the host table from wb-hosts.conf');


# a typo in the host table is the configuration's failure, not a request's

install_conf_d('wb-hosts.conf' => sub { $_[0] =~ s/(statistics-api\.wildberries\.ru\s+)statistics;/$1statistcs;/r });

($status, $output) = check(<<"EOF");
    include $etc/audit.conf;
    include $etc/ratelimit.conf;
    include $etc/wb-servers.conf;
EOF
isnt($status, 0, 'a misspelt category in wb-hosts.conf fails nginx -t');
like($output, qr/unknown token scope category or scope "statistcs" in \Q$etc\E\/wb-hosts\.conf:\d+/, 'the error names the misspelt category and the line of wb-hosts.conf');

$t->done_testing(config_errors => 1);
