#!/usr/bin/perl

# Mistakes found when nginx merges the configuration name the place of the
# directive that made them, as nginx's own messages do ("in FILE:LINE"),
# not the "}" that closes the http block; a zone too small names the
# minimum.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test;

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

# nginx -t of an http block with BODY; and FILE:LINE of the first line
# that matches MARK

sub check {
    my ($body, $mark) = @_;

    $t->write_config("http {\n    %%TEST_GLOBALS_HTTP%%\n\n$body\n}\n");

    my @lines = split /\n/, $t->read_file('nginx.conf');
    my ($line) = grep { $lines[$_ - 1] =~ $mark } 1 .. @lines;
    my $file = $t->testdir . '/nginx.conf';

    my ($rc, $out) = $t->test_config();

    return ($rc, $out, "$file:" . ($line // '?'));
}

my $server = <<'EOF';
    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location / {
            LOCATION
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
EOF

sub server {
    my ($location, $http) = @_;
    (my $s = $server) =~ s/LOCATION/$location/;
    return ($http // '') . "\n" . $s;
}

my ($rc, $out, $at);

($rc, $out, $at) = check(server('token_scope marketplace;'),
                         qr/token_scope marketplace/);
isnt($rc, 0, 'token_scope without keys fails nginx -t');
like($out, qr/no "token_scope_key_file" is configured in \Q$at\E\n/, 'the missing key file names the token_scope directive\'s place') or diag($out);

($rc, $out, $at) = check(server('', '    token_scope marketplace;'),
                         qr/token_scope marketplace/);
like($out, qr/no "token_scope_key_file" is configured in \Q$at\E\n/, 'an inherited token_scope is named where it is written') or diag($out);

($rc, $out, $at) = check(server("token_scope all;\n"
                                . "            token_scope_opaque on;"),
                         qr/token_scope_opaque on/);
like($out, qr/"token_scope_opaque on" needs "token_scope_redis" in \Q$at\E\n/, 'opaque tokens without Redis name the token_scope_opaque directive\'s place') or diag($out);

my $keys = '    token_scope_key_file %%KEYS%%/e1.pem kid=e1;';

($rc, $out, $at) = check(server("token_scope all;\n"
                                . "            token_scope_service_secrets "
                                . "redis;", $keys),
                         qr/token_scope_service_secrets/);
like($out, qr/"token_scope_service_secrets redis" needs "token_scope_redis" in \Q$at\E\n/, 'service secrets from Redis without Redis name the directive\'s place') or diag($out);

($rc, $out, $at) = check(server("token_scope all;\n"
                                . "            token_scope_personal_only "
                                . "common;", $keys),
                         qr/token_scope_personal_only/);
like($out, qr/"token_scope_personal_only" takes categories .* in \Q$at\E\n/, 'token_scope_personal_only common names the directive\'s place') or diag($out);

($rc, $out, $at) = check('    token_scope_cache zone=c:16k;',
                         qr/token_scope_cache/);
isnt($rc, 0, 'a 16k cache zone fails nginx -t');
like($out, qr/zone "zone=c:16k" is too small, the minimum is 32k in \Q$at\E\n/, 'a zone too small names the minimum') or diag($out);

$t->done_testing();
