#!/usr/bin/perl

# Claims: exp, nbf, iat and the leeway; read-only tokens and the access
# mode; the environment (production, sandbox); token types and legacy
# tokens; contradictory claims.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

$t->write_config(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        add_header X-TS-Reason $token_scope_reason always;

        location /strict {
            token_scope all;
            proxy_pass http://backend;
        }

        location /leeway {
            token_scope all;
            token_scope_leeway 300s;
            proxy_pass http://backend;
        }

        location /auto {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /read {
            token_scope marketplace;
            token_scope_access read;
            proxy_pass http://backend;
        }

        location /write {
            token_scope marketplace;
            token_scope_access write;
            proxy_pass http://backend;
        }

        location /production {
            token_scope all;
            proxy_pass http://backend;
        }

        location /sandbox {
            token_scope all;
            token_scope_environment sandbox;
            proxy_pass http://backend;
        }

        location /sandbox-marketplace {
            token_scope marketplace;
            token_scope_environment sandbox;
            proxy_pass http://backend;
        }

        location /types {
            token_scope all;
            token_scope_types personal service;
            proxy_pass http://backend;
        }

        location /types-legacy {
            token_scope all;
            token_scope_types legacy;
            proxy_pass http://backend;
        }

        location /types-test {
            token_scope all;
            token_scope_types test;
            token_scope_environment sandbox;
            proxy_pass http://backend;
        }

        location /nolegacy {
            token_scope all;
            token_scope_legacy off;
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        location / {
            return 200 "backend ok\n";
        }
    }
}
EOF

$t->run();

sub req {
    my ($method, $path, $token) = @_;
    return verdict($t->request($method, $path,
                               Authorization => "Bearer $token"));
}

sub answer { req('GET', @_) }

sub mint { $t->mint('e1', @_) }

my $now = time();


# time claims

my $expired = mint('--claim', 'exp=' . ($now - 100));
is(answer('/strict', $expired), '401 expired', 'a token expired 100 seconds ago is refused');
is($t->get('/strict', Authorization => "Bearer $expired")->{json}{detail}, 'token expired', 'an expired token has the WB detail');
is(answer('/leeway', $expired), '200', 'a leeway of 300 seconds admits a token expired 100 seconds ago');
is(answer('/leeway', mint('--claim', 'exp=' . ($now - 1000))), '401 expired', 'a leeway of 300 seconds refuses a token expired 1000 seconds ago');
is(answer('/strict', mint('--claim', 'exp=' . ($now + 100))), '200', 'a token expiring in 100 seconds passes');

my $early = mint('--claim', 'nbf=' . ($now + 100));
is(answer('/strict', $early), '401 not_yet_valid', 'a token with nbf in the future is refused');
like($t->get('/strict', Authorization => "Bearer $early")->{json}{detail}, qr/^token problem; token is not valid yet/, 'a token not valid yet has the WB detail');
is(answer('/leeway', $early), '200', 'a leeway of 300 seconds admits nbf 100 seconds ahead');
is(answer('/leeway', mint('--claim', 'nbf=' . ($now + 1000))), '401 not_yet_valid', 'a leeway of 300 seconds refuses nbf 1000 seconds ahead');
is(answer('/strict', mint('--claim', 'nbf=' . ($now - 100))), '200', 'a token with nbf in the past passes');

my $future = mint('--claim', 'iat=' . ($now + 100));
is(answer('/strict', $future), '401 not_yet_valid', 'a token issued in the future is refused');
is(answer('/leeway', $future), '200', 'a leeway of 300 seconds admits iat 100 seconds ahead');
is(answer('/strict', mint('--claim', 'iat=' . ($now - 86400))), '200', 'a token issued yesterday passes');

my $noexp = mint('--claim', 'exp=null');
is(answer('/strict', $noexp), '401 malformed', 'a token without exp is malformed');
is(answer('/leeway', $noexp), '401 malformed', 'a token without exp is malformed with a leeway too');
like($t->get('/strict', Authorization => "Bearer $noexp")->{json}{detail}, qr/^token problem; token is malformed: .*exp/, 'the detail says exp is missing');


# read-only tokens and the access mode

my $ro = mint('--categories', 'marketplace', '--readonly');
my $rw = mint('--categories', 'marketplace');

is(req('GET', '/auto', $ro), '200', 'a read-only token may GET');
is(req('HEAD', '/auto', $ro), '200', 'a read-only token may HEAD');
is(req('OPTIONS', '/auto', $ro), '200', 'a read-only token may OPTIONS');
is(req('POST', '/auto', $ro), '401 read_only', 'a read-only token may not POST');
is(req('PUT', '/auto', $ro), '401 read_only', 'a read-only token may not PUT');
is(req('PATCH', '/auto', $ro), '401 read_only', 'a read-only token may not PATCH');
is(req('DELETE', '/auto', $ro), '401 read_only', 'a read-only token may not DELETE');
like($t->request('POST', '/auto', Authorization => "Bearer $ro")->{json}{detail}, qr/^token scope not allowed.*read-only/, 'the detail says the token is read-only');
is(req('POST', '/auto', $rw), '200', 'a read-write token may POST');
is(req('DELETE', '/auto', $rw), '200', 'a read-write token may DELETE');

is(req('POST', '/read', $ro), '200', 'token_scope_access read lets a read-only token POST');
is(req('GET', '/write', $ro), '401 read_only', 'token_scope_access write refuses a read-only token on GET');
is(req('GET', '/write', $rw), '200', 'token_scope_access write lets a read-write token GET');

is(req('POST', '/auto', mint('--categories', 'content', '--readonly')), '401 category', 'the category is checked before the access mode');


# the environment

my $base = mint();
my $test = mint('--type', 'test');
my $legacy_sandbox = mint('--type', 'legacy', '--claim', 'sandbox=true');
my $test_sandbox = mint('--type', 'test', '--claim', 't=null', '--claim', 'sandbox=true');
my $legacy = mint('--type', 'legacy');

is(answer('/production', $base), '200', 'production admits a base token');
is(answer('/production', $test), '401 environment', 'production refuses a test token');
is(answer('/production', $legacy_sandbox), '401 environment', 'production refuses a legacy token with the obsolete sandbox claim');
is(answer('/production', mint('--type', 'legacy', '--claim', 't=true')), '401 environment', 'production refuses a legacy token with t true');
is(answer('/production', mint('--claim', 't=false')), '200', 'production admits a token with t false');
is(answer('/sandbox', $test), '200', 'sandbox admits a test token');
is(answer('/sandbox', $legacy_sandbox), '200', 'sandbox admits a legacy token with the obsolete sandbox claim');
is(answer('/sandbox', $test_sandbox), '200', 'sandbox admits a test token with sandbox instead of t');
is(answer('/sandbox', $base), '401 environment', 'sandbox refuses a base token');
is(answer('/sandbox', $legacy), '401 environment', 'sandbox refuses a legacy token without t');
is(answer('/sandbox', mint('--type', 'personal')), '401 environment', 'sandbox refuses a personal token');
is(answer('/sandbox-marketplace', mint('--type', 'test', '--categories', 'marketplace')), '200', 'sandbox admits a test token with the category');
is(answer('/sandbox-marketplace', mint('--type', 'test', '--categories', 'content')), '401 category', 'sandbox still checks the category of a test token');
like($t->get('/sandbox', Authorization => "Bearer $base")->{json}{detail}, qr/^token scope not allowed/, 'an environment failure has the WB scope detail');


# token types

my $personal = mint('--type', 'personal');
my $service = mint('--type', 'service', '--service', '42');

is(answer('/types', $base), '401 token_type', 'types personal service refuse a base token');
is(answer('/types', $personal), '200', 'types personal service admit a personal token');
is(answer('/types', $service), '200', 'types personal service admit a service token');
is(answer('/types', $legacy), '401 token_type', 'types personal service refuse a legacy token');
is(answer('/types-legacy', $legacy), '200', 'types legacy admit a legacy token');
is(answer('/types-legacy', $base), '401 token_type', 'types legacy refuse a base token');
is(answer('/types-test', $test), '200', 'types test admit a test token on a sandbox');
is(answer('/types-test', $legacy_sandbox), '401 token_type', 'types test refuse a legacy sandbox token');

is(answer('/nolegacy', $legacy), '401 token_type', 'token_scope_legacy off refuses a token without acc');
is(answer('/nolegacy', $base), '200', 'token_scope_legacy off admits a base token');
is(answer('/strict', $legacy), '200', 'legacy tokens pass by default');


# contradictory claims

is(answer('/strict', mint('--claim', 'acc=4')), '401 malformed', 'acc 4 without for is malformed');
is(answer('/strict', mint('--claim', 'acc=4', '--claim', 'for="self"')), '401 malformed', 'acc 4 with for self is malformed');
is(answer('/strict', mint('--claim', 'acc=4', '--claim', 'for="asid:"')), '401 malformed', 'acc 4 with an empty asid is malformed');
is(answer('/strict', mint('--claim', 'acc=2')), '401 malformed', 'acc 2 without t is malformed');
is(answer('/strict', mint('--claim', 'acc=2', '--claim', 't=false')), '401 malformed', 'acc 2 with t false is malformed');
is(answer('/strict', mint('--type', 'personal', '--claim', 'for="asid:5"')), '401 malformed', 'acc 3 for a service is malformed');
is(answer('/strict', mint('--type', 'personal', '--claim', 'for="someone"')), '401 malformed', 'acc 3 for someone else is malformed');
is(answer('/strict', mint('--claim', 'acc=1.0')), '401 malformed', 'acc as a float is malformed');
is(answer('/strict', mint('--claim', 'acc="1"')), '401 malformed', 'acc as a string is malformed');
is(answer('/strict', mint('--claim', 'oid="12345"')), '401 malformed', 'oid as a string is malformed');
is(answer('/strict', mint('--claim', 'nbf="0"')), '401 malformed', 'nbf as a string is malformed');
is(answer('/strict', mint('--claim', 'iat=1.5')), '401 malformed', 'iat as a float is malformed');
is(answer('/strict', mint('--claim', 't="true"')), '401 malformed', 't as a string is malformed');

$t->done_testing();
