#!/usr/bin/perl

# token_scope_preflight: with "pass", a CORS preflight (OPTIONS with
# Origin and Access-Control-Request-Method) reaches the upstream without a
# token, undecided (empty $token_scope_decision and $token_scope_reason);
# an OPTIONS without both headers, one with a method override, and any
# other method with those headers are still checked.  The default, check,
# checks preflights too.

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

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        add_header X-Decision "$token_scope_decision/$token_scope_reason"
                   always;

        location /pass/ {
            token_scope marketplace;
            token_scope_preflight pass;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location /check/ {
            token_scope marketplace;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        location / {
            return 200 "backend $request_method\n";
        }
    }
}
EOF

$t->run();

my $good = $t->mint('e1', '--categories', 'marketplace');
my $content = $t->mint('e1', '--categories', 'content');

my @cors = (Origin => 'https://shop.example',
            'Access-Control-Request-Method' => 'DELETE');

my $r = $t->request('OPTIONS', '/pass/x', @cors);
is($r->{status}, 200, 'pass: a preflight without a token reaches the upstream');
is($r->{body}, "backend OPTIONS\n", 'pass: the upstream answers the preflight');
is($r->{headers}{'x-decision'}, '/', 'pass: a preflight is undecided: empty decision and reason');

$r = $t->request('OPTIONS', '/pass/x?a=1', @cors, Authorization => "Bearer $content");
is($r->{status}, 200, 'pass: a preflight with a query string and a token without the category passes too');

is(verdict($t->request('OPTIONS', '/pass/x')), '401 missing', 'pass: an OPTIONS without CORS headers is checked');
is(verdict($t->request('OPTIONS', '/pass/x', Origin => 'https://shop.example')), '401 missing', 'pass: an OPTIONS with Origin alone is checked');
is(verdict($t->request('OPTIONS', '/pass/x', 'Access-Control-Request-Method' => 'GET')), '401 missing', 'pass: an OPTIONS with Access-Control-Request-Method alone is checked');
is(verdict($t->request('OPTIONS', '/pass/x', Origin => '', 'Access-Control-Request-Method' => 'GET')), '401 missing', 'pass: an empty Origin is no preflight');

is(verdict($t->request('OPTIONS', '/pass/x', @cors, 'X-HTTP-Method-Override' => 'DELETE')), '401 missing', 'pass: a preflight with X-HTTP-Method-Override is checked');
is(verdict($t->request('OPTIONS', '/pass/x', @cors, 'X-Method-Override' => 'DELETE')), '401 missing', 'pass: a preflight with X-Method-Override is checked');
is(verdict($t->request('OPTIONS', '/pass/x', @cors, 'X-HTTP-Method' => 'DELETE')), '401 missing', 'pass: a preflight with X-HTTP-Method is checked');
is(verdict($t->request('OPTIONS', '/pass/x?_method=DELETE', @cors)), '401 missing', 'pass: a preflight with a _method argument is checked');
is(verdict($t->request('OPTIONS', '/pass/x?%5Fmethod=DELETE', @cors)), '401 missing', 'pass: a preflight with an encoded _method argument is checked');

for my $m (qw(GET POST DELETE PUT PATCH)) {
    is(verdict($t->request($m, '/pass/x', @cors)), '401 missing', "pass: $m with the CORS headers is checked");
}

is(verdict($t->request('DELETE', '/pass/x', @cors, Authorization => "Bearer $content")), '401 category', 'pass: DELETE with the CORS headers and a token without the category is refused');
is($t->request('GET', '/pass/x', Authorization => "Bearer $good")->{headers}{'x-decision'}, 'allow/ok', 'pass: a good token still passes and is decided');

$r = $t->request('OPTIONS', '/check/x', @cors);
is(verdict($r), '401 missing', 'check (the default): a preflight without a token is refused');
is($r->{headers}{'x-decision'}, 'deny/missing', 'check: and decided');

$t->done_testing();
