#!/usr/bin/perl

# nginx's access conventions: a refusal is the status returned to the
# access phase, one vote that "satisfy any" weighs against allow/deny and
# auth_basic as nginx does for auth_basic and auth_request; an error_page
# for the refusal's status is honoured, with the module's variables in its
# target; without one the answer is the module's JSON with its
# WWW-Authenticate challenge, under "satisfy all" and "satisfy any" alike.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use MIME::Base64 qw(encode_base64);
use Test::More;
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

$t->write_file('htpasswd', "alice:{PLAIN}wonderland\n");

mkdir $t->testdir . '/errors';
chmod 0755, $t->testdir . '/errors';

my $page401 = qq{{"custom":"401 page from error_page"}\n};
$t->write_file('errors/401.json', $page401);

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

        # satisfy any: allow/deny, auth_basic and token_scope vote

        location /any-allow/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /any-allow-basic/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            auth_basic "x";
            auth_basic_user_file %%TESTDIR%%/htpasswd;
            proxy_pass http://backend;
        }

        location /any-deny/ {
            satisfy any;
            deny all;
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /any-deny403/ {
            satisfy any;
            deny all;
            token_scope marketplace;
            token_scope_deny_status 403;
            proxy_pass http://backend;
        }

        location /any-basic/ {
            satisfy any;
            auth_basic "x";
            auth_basic_user_file %%TESTDIR%%/htpasswd;
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /any-errpage/ {
            satisfy any;
            deny all;
            token_scope marketplace;
            error_page 401 /errors/401.json;
            proxy_pass http://backend;
        }

        # satisfy all (the default): every vote must pass

        location /all/ {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /all-allow/ {
            allow 127.0.0.1;
            deny all;
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /all-deny/ {
            deny all;
            token_scope marketplace;
            proxy_pass http://backend;
        }

        # error_page for the refusal's status

        location /errfile/ {
            token_scope marketplace;
            error_page 401 /errors/401.json;
            proxy_pass http://backend;
        }

        location /errors/ {
            internal;
            root %%TESTDIR%%;
        }

        location /errnamed/ {
            token_scope marketplace;
            token_scope_deny_status 403;
            error_page 403 = @denied;
            proxy_pass http://backend;
        }

        location @denied {
            token_scope off;
            rewrite ^ /denied break;
            proxy_set_header X-Reason $token_scope_reason;
            proxy_set_header X-Decision $token_scope_decision;
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        access_log %%TESTDIR%%/backend.log;

        location / {
            return 200 "backend ok\n";
        }

        location = /denied {
            return 200 "denied page reason=$http_x_reason decision=$http_x_decision\n";
        }
    }
}
EOF

$t->run();

my $market = $t->mint('e1', '--categories', 'marketplace');
my $content = $t->mint('e1', '--categories', 'content');

my $basic_good = 'Basic ' . encode_base64('alice:wonderland', '');
my $basic_bad = 'Basic ' . encode_base64('alice:looking-glass', '');

sub get {
    my ($path, $token, @headers) = @_;
    push @headers, Authorization => "Bearer $token" if defined $token;
    return $t->get($path, @headers);
}

sub answer { verdict(get(@_)) }

sub basic { $t->get($_[0], Authorization => $_[1]) }


# satisfy any; allow 127.0.0.1; deny all: the address grants

my $res = get('/any-allow/1');
is($res->{status}, 200, 'satisfy any with allow 127.0.0.1 serves a request without a token');
is($res->{body}, "backend ok\n", 'the request granted by allow reaches the backend');
ok(!exists $res->{headers}{'www-authenticate'}, 'a request granted by allow has no WWW-Authenticate header');
is(answer('/any-allow/2', $content), '200', 'satisfy any with allow 127.0.0.1 serves a content token');
is(answer('/any-allow/3', 'garbage'), '200', 'satisfy any with allow 127.0.0.1 serves a malformed token');
is(answer('/any-allow/4', $market), '200', 'satisfy any with allow 127.0.0.1 serves a marketplace token');

# auth_basic configured the same way behaves the same

$res = get('/any-allow-basic/1');
is($res->{status}, 200, 'auth_basic under satisfy any with allow 127.0.0.1 serves a request without credentials');
ok(!exists $res->{headers}{'www-authenticate'}, 'auth_basic granted by allow sends no WWW-Authenticate header');


# satisfy any; deny all: the token decides, the answer is the module's

$res = get('/any-deny/1');
is(verdict($res), '401 missing', 'satisfy any with deny all refuses a request without a token with the JSON body');
is($res->{headers}{'www-authenticate'}, 'Bearer', 'the 401 under satisfy any carries the Bearer challenge');
is(answer('/any-deny/2', $market), '200', 'satisfy any with deny all serves a marketplace token');
is(answer('/any-deny/3', $content), '401 category', 'satisfy any with deny all refuses a content token with the JSON body');
like(get('/any-deny/4', $content)->{headers}{'www-authenticate'} // '', qr/^Bearer error="insufficient_scope"/, 'the scope refusal under satisfy any says insufficient_scope');
is(answer('/any-deny403/1', $content), '403 category', 'satisfy any with deny all and deny_status 403 refuses a content token with a 403 JSON body');
is(answer('/any-deny403/2'), '401 missing', 'satisfy any with deny all and deny_status 403 still refuses a missing token with 401');


# satisfy any with auth_basic: either credential passes

is(basic('/any-basic/1', $basic_good)->{status}, 200, 'satisfy any serves good Basic credentials without a token');
is(basic('/any-basic/2', $basic_good)->{body}, "backend ok\n", 'the request granted by Basic credentials reaches the backend');
ok(!exists basic('/any-basic/3', $basic_good)->{headers}{'www-authenticate'}, 'a request granted by Basic credentials has no WWW-Authenticate header');
is(answer('/any-basic/4', $market), '200', 'satisfy any serves a marketplace Bearer token without Basic credentials');
is(get('/any-basic/5')->{status}, 401, 'satisfy any refuses a request with neither credential');
is(basic('/any-basic/6', $basic_bad)->{status}, 401, 'satisfy any refuses a wrong Basic password');
is(get('/any-basic/7', $content)->{status}, 401, 'satisfy any refuses a content token without Basic credentials');

$res = get('/any-basic/8');
like($res->{headers}{'www-authenticate'} // '', qr/\bBearer\b/, 'the refusal of neither credential carries the Bearer challenge');
like($res->{headers}{'www-authenticate'} // '', qr/\bBasic realm="x"/, 'the refusal of neither credential carries the Basic challenge too');


# satisfy all: both must pass

$res = get('/all/1');
is(verdict($res), '401 missing', 'satisfy all refuses a request without a token with the JSON body');
is($res->{headers}{'www-authenticate'}, 'Bearer', 'the 401 under satisfy all carries the Bearer challenge');

is(answer('/all-allow/1'), '401 missing', 'satisfy all with allow 127.0.0.1 still refuses a request without a token');
is(answer('/all-allow/2', $content), '401 category', 'satisfy all with allow 127.0.0.1 still refuses a content token');
is(answer('/all-allow/3', $market), '200', 'satisfy all with allow 127.0.0.1 serves a marketplace token');

$res = get('/all-deny/1', $market);
is($res->{status}, 403, 'satisfy all with deny all refuses a marketplace token with 403');
like($res->{headers}{'content-type'} // '', qr{^text/html}, 'the 403 of deny all is nginx\'s own HTML page');
like($res->{body}, qr{<title>403 Forbidden</title>}, 'the 403 of deny all is nginx\'s forbidden page');
unlike($res->{body}, qr/"code"/, 'the 403 of deny all is not the module\'s JSON');
ok(!exists $res->{headers}{'www-authenticate'}, 'the 403 of deny all has no WWW-Authenticate header');
like($t->read_file('error.log'), qr/access forbidden by rule/, 'deny all logs nginx\'s own access forbidden by rule');


# error_page for the refusal's status

$res = get('/errfile/1');
is($res->{status}, 401, 'a refusal redirected by error_page 401 keeps the status 401');
is($res->{body}, $page401, 'a refusal without a token gets the error_page file as its body');
is(get('/errfile/2', $content)->{body}, $page401, 'a scope refusal (401) gets the error_page file as its body');
is(answer('/errfile/3', $market), '200', 'a location with error_page 401 still serves a marketplace token');

$res = get('/any-errpage/1');
is($res->{status}, 401, 'under satisfy any a refusal redirected by error_page 401 keeps the status 401');
is($res->{body}, $page401, 'under satisfy any a refusal gets the error_page file as its body');

$res = get('/errnamed/1', $content);
is($res->{status}, 200, 'error_page 403 = @denied answers with the status of the named location');
like($res->{body}, qr/^denied page /, 'a 403 refusal is redirected to the named location');
like($res->{body}, qr/ reason=category /, 'the named location sees the reason of the refusal');
like($res->{body}, qr/ decision=deny$/m, 'the named location sees the decision of the refusal');
is(answer('/errnamed/2'), '401 missing', 'a 401 that no error_page claims is answered with the JSON body');
is(get('/errnamed/3', $market)->{body}, "backend ok\n", 'a location with error_page 403 still serves a marketplace token');

$t->done_testing();
