#!/usr/bin/perl

# token_scope_log_level: a refused token is logged at info by default, as
# nginx logs a client's errors, so a flood of forged tokens costs no write
# to an error log kept at "error"; the directive raises the level per
# location; a missing token stays at info; report mode warns as before;
# "nginx -t" names a level it does not know.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');
$t->keygen('ES256', 'forger');

my $conf = <<'EOF';
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /default {
            token_scope content;
            empty_gif;
        }

        location /loud {
            token_scope content;
            token_scope_log_level error;
            empty_gif;
        }

        location /report {
            token_scope content;
            token_scope_mode report;
            token_scope_log_level error;
            empty_gif;
        }
    }
}
EOF

$t->write_config($conf)->run();

my $good = $t->mint('e1', '--categories', 'content');
my $other = $t->mint('e1', '--categories', 'statistics');
my $forged = $t->mint('forger', '--kid', 'e1', '--categories', 'content');

# the lines of error.log since the last call

my $seen = 0;

sub new_lines {
    my $log = $t->read_file('error.log');
    my $new = substr($log, $seen);
    $seen = length $log;
    return $new;
}

sub call {
    my ($path, $token) = @_;
    my @auth = defined $token ? (Authorization => "Bearer $token") : ();
    return verdict($t->get($path, @auth));
}

new_lines();

is(call('/default', $good), '200', 'a valid token passes');
unlike(new_lines(), qr/token scope: denied/, 'and nothing is logged');

is(call('/default', $forged), '401 bad_signature', 'a forged token: 401');
like(new_lines(), qr/\[info\] .*token scope: denied, reason "bad_signature"/,
     'logged at info by default');

is(call('/default', $other), '401 category', 'a wrong category: 401');
like(new_lines(), qr/\[info\] .*token scope: denied, reason "category"/,
     'any refusal: at info');

is(call('/loud', $forged), '401 bad_signature', 'a forged token elsewhere');
like(new_lines(), qr/\[error\] .*token scope: denied, reason "bad_signature"/,
     'logged at error where token_scope_log_level error is set');

is(call('/loud'), '401 missing', 'no token: 401');
like(new_lines(), qr/\[info\] .*token scope: denied, reason "missing"/,
     'a missing token stays at info whatever the level');

is(call('/report', $forged), '200', 'report mode lets a forged token by');
like(new_lines(), qr/\[warn\] .*token scope: would deny, (?#
    )reason "bad_signature"/, 'and warns, as before');

# "nginx -t"

(my $bad = $conf) =~ s/(token_scope_log_level) error;/$1 debug;/;
$t->write_config($bad);

my ($rc, $out) = $t->test_config();
isnt($rc, 0, 'an unknown level: nginx -t fails');
like($out, qr/invalid value "debug" in .*nginx.conf:\d+/,
     'and names the value');

$t->done_testing(config_errors => 1);
