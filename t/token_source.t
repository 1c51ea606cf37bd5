#!/usr/bin/perl

# token_scope_token: the token from a cookie or an argument instead of
# Authorization; an empty value is a missing token; token_scope_max_size
# and the malformed rules apply as to Authorization.  Under "rewrite ...
# last" the final location decides, once, and with the token the request
# carries there: a variable read before the rewrite changed the argument
# does not leave the facts of the first token behind.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

# a token in an argument is in $request and in error lines' context: these
# servers log neither (the harness fails on a signature in any log)
$t->write_config(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    log_format source '$uri $status decision=$token_scope_decision '
                      'reason=$token_scope_reason sub=$token_scope_claim_sub';

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        access_log %%TESTDIR%%/source.log source;
        error_log %%TESTDIR%%/quiet.log notice;

        add_header X-TS-Reason $token_scope_reason always;
        add_header X-Sub $token_scope_claim_sub always;

        token_scope all;

        location /header {
            proxy_pass http://127.0.0.1:%%PORT_8081%%/ok;
        }

        location /cookie {
            token_scope_token $cookie_access_token;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/ok;
        }

        location /arg {
            token_scope_token $arg_access_token;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/ok;
        }

        location /small {
            token_scope_token $arg_access_token;
            token_scope_max_size 64;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/ok;
        }

        location /first {
            token_scope_token $arg_access_token;
            token_scope content;
            rewrite ^ /final last;
        }

        location /swap {
            token_scope_token $arg_access_token;
            set $early $token_scope_claim_sub;
            rewrite ^ /final?access_token=$arg_other? last;
        }

        location /final {
            token_scope_token $arg_access_token;
            token_scope marketplace;
            proxy_pass http://127.0.0.1:%%PORT_8081%%/final;
        }

        location = /status {
            token_scope off;
            access_log off;
            token_scope_status;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        access_log off;

        location / {
            return 200 "$uri\n";
        }
    }
}
EOF

$t->run();

my $alice = $t->mint('e1', '--categories', 'marketplace',
                     '--claim', 'sub="alice"');
my $bob = $t->mint('e1', '--categories', 'marketplace',
                   '--claim', 'sub="bob"');

sub v { verdict($_[0]) }

sub decisions {
    my $sum = 0;
    $sum += $_ for $t->get('/status')->{body}
                   =~ /^token_scope_decisions_total\{[^}]*\} (\d+)$/mg;
    return $sum;
}


# the default: Authorization
is(v($t->get('/header', Authorization => "Bearer $alice")), '200', 'without token_scope_token the token comes from Authorization');

# a cookie
is(v($t->get('/cookie', Cookie => "x=1; access_token=$alice")), '200', 'a token in a cookie passes');
is($t->get('/cookie', Cookie => "access_token=$alice")->{headers}{'x-sub'}, 'alice', 'its claims are known');
is(v($t->get('/cookie', Authorization => "Bearer $alice")), '401 missing', 'where the token comes from a cookie, Authorization is not looked at');
is(v($t->get('/cookie', Cookie => 'access_token=')), '401 missing', 'an empty cookie is a missing token');
is(v($t->get('/cookie', Cookie => "access_token=Bearer%20$alice")), '401 malformed', 'a cookie is the token itself, no "Bearer" scheme');

# an argument
is(v($t->get("/arg?access_token=$alice")), '200', 'a token in an argument passes');
is(v($t->get('/arg?access_token=')), '401 missing', 'an empty argument is a missing token');
is(v($t->get('/arg?other=1')), '401 missing', 'no argument is a missing token');
is(v($t->get('/arg?access_token=abc.def.ghi')), '401 malformed', 'a malformed token in an argument is malformed');
my $forged = $alice =~ s/.{4}$/AAAA/r;
is(v($t->get("/arg?access_token=$forged")), '401 bad_signature', 'a forged token in an argument is refused');
is(v($t->get("/small?access_token=$alice")), '401 malformed', 'token_scope_max_size holds for a token in an argument');

# rewrite ... last: the final location decides, once (the log phase counts
# a request's decision, after the answer: polled)
sub decisions_reach {
    my ($n) = @_;
    for (1 .. 250) {
        my $d = decisions();
        return $d if $d >= $n;
        select undef, undef, undef, 0.02;
    }
    return decisions();
}

is(decisions_reach(12), 12, 'the 12 requests so far were decided once each');
my $r = $t->get("/first?access_token=$alice");
is(v($r), '200', 'a rewrite from a location the token may not call: the final location decides');
is($r->{body}, "/final\n", 'the final location answered');
is(decisions_reach(13), 13, 'one decision was counted for the request');

# a variable read the facts of one token, then the rewrite changed it
$r = $t->get("/swap?access_token=$alice&other=$bob");
is(v($r), '200', 'the argument changed by a rewrite: the request passes');
is($r->{headers}{'x-sub'}, 'bob', 'its facts are of the token it carries in the final location');
is(v($t->get("/swap?access_token=$alice&other=$forged")), '401 bad_signature', 'a forged token put in by the rewrite is refused, not the facts of the first one used');
is(v($t->get("/swap?access_token=$alice")), '401 missing', 'a rewrite that drops the token leaves it missing');

$t->done_testing();
