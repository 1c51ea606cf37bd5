#!/usr/bin/perl

# Paths and methods (issue 14, SPEC section 13): the raw URI that nginx
# forwards is the one that was decided, also after "try_files ... @named";
# "..;" and ".;" segments are not canonical, with or without a catalogue; a
# case variant of a catalogue path is refused in every unmatched= mode; a
# method override (X-HTTP-Method-Override, X-Method-Override, X-HTTP-Method,
# ?_method=) must be allowed as well as the request's own method, unless
# token_scope_method_override ignore.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep);
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

my $CONF = <<'EOF';
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    token_scope_operations t {
        GET     localhost  "/api/v3/dbs/orders/{id}/meta"  marketplace  read;
        DELETE  localhost  "/api/v3/dbs/orders/{id}/meta"  marketplace  write;
        GET     localhost  "/api/v3/stocks/{id}"           marketplace  read;
        GET     localhost  /adv/v0/delete                  advert       write;
        GET     localhost  /adv/v0/list                    advert       read;
        POST    localhost  /content/v2/get/cards/list      content      read;
    }

    log_format backend '$request_uri';

    add_header X-TS-Decision $token_scope_decision always;
    add_header X-TS-Reason $token_scope_reason always;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    # try_files into a named location that forwards the raw request URI
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        root %%TESTDIR%%/nofiles;

        location /api/ {
            try_files $uri @api;
        }

        location @api {
            token_scope marketplace;
            token_scope_operations_use t unmatched=deny;
            proxy_pass http://backend;
        }
    }

    # the catalogue, unmatched requests fall back to the location's rule
    server {
        listen 127.0.0.1:%%PORT_8082%%;
        server_name localhost;

        location / {
            token_scope marketplace;
            token_scope_operations_use t unmatched=location;
            proxy_pass http://backend;
        }
    }

    # no catalogue
    server {
        listen 127.0.0.1:%%PORT_8083%%;
        server_name localhost;

        location / {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /plain/ {
            token_scope content;
            proxy_pass http://backend;
        }
    }

    # case variants: the location's rule would let a read-only token in
    server {
        listen 127.0.0.1:%%PORT_8084%%;
        server_name localhost;

        location / {
            token_scope advert;
            token_scope_access read;
            token_scope_operations_use t unmatched=location;
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8085%%;
        server_name localhost;

        location / {
            token_scope advert;
            token_scope_operations_use t unmatched=deny;
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8086%%;
        server_name localhost;

        location / {
            token_scope advert;
            token_scope_operations_use t unmatched=not_found;
            proxy_pass http://backend;
        }
    }

    # method overrides (token_scope_method_override check is the default)
    server {
        listen 127.0.0.1:%%PORT_8087%%;
        server_name localhost;

        location / {
            token_scope content;
            token_scope_operations_use t unmatched=deny;
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8088%%;
        server_name localhost;

        location / {
            token_scope content;
            token_scope_operations_use t unmatched=location;
            proxy_pass http://backend;
        }
    }

    # token_scope_method_override ignore
    server {
        listen 127.0.0.1:%%PORT_8089%%;
        server_name localhost;

        location / {
            token_scope content;
            token_scope_operations_use t unmatched=deny;
            token_scope_method_override ignore;
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8090%%;
        server_name localhost;

        location / {
            token_scope content;
            token_scope_operations_use t unmatched=location;
            token_scope_method_override ignore;
            proxy_pass http://backend;
        }

        location /plain/ {
            token_scope content;
            token_scope_method_override ignore;
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        access_log %%TESTDIR%%/backend.log backend;

        location / {
            return 200 "backend $request_uri\n";
        }
    }
}
EOF


# nginx -t in a directory of its own, so that its [emerg] lines stay out of
# the error log of the nginx under test

my $c = TokenScope::Test->new();
$c->keygen('ES256', 'e1');

sub check_conf {
    my ($conf) = @_;
    $c->write_config($conf);
    return $c->test_config();
}

sub check_location {
    my ($directives) = @_;

    return check_conf(<<"EOF");
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location / {
            token_scope content;
            $directives
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}
EOF
}

my ($rc, $out);

($rc, $out) = check_location('token_scope_method_override check;');
is($rc, 0, 'token_scope_method_override check passes nginx -t') or diag($out);

($rc, $out) = check_location('token_scope_method_override ignore;');
is($rc, 0, 'token_scope_method_override ignore passes nginx -t') or diag($out);

($rc, $out) = check_location('token_scope_method_override maybe;');
isnt($rc, 0, 'token_scope_method_override maybe fails nginx -t');
like($out, qr/\[emerg\].*"maybe"/, 'the message names the bad token_scope_method_override value');

($rc, $out) = check_conf(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    token_scope_method_override ignore;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location / {
            token_scope content;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}
EOF
is($rc, 0, 'token_scope_method_override ignore in the http block passes nginx -t') or diag($out);

($rc, $out) = check_conf($CONF);
is($rc, 0, 'the configuration of this test, with token_scope_method_override ignore in two servers, passes nginx -t') or diag($out);

undef $c;


$t->write_config($CONF);
$t->run();

my $market = $t->mint('e1', '--categories', 'marketplace');
my $ro_market = $t->mint('e1', '--categories', 'marketplace', '--readonly');
my $ro_advert = $t->mint('e1', '--categories', 'advert', '--readonly');
my $rw_advert = $t->mint('e1', '--categories', 'advert');
my $ro_content = $t->mint('e1', '--categories', 'content', '--readonly');
my $rw_content = $t->mint('e1', '--categories', 'content');

sub req {
    my ($port, $method, $path, $token, @headers) = @_;
    push @headers, Authorization => "Bearer $token" if defined $token;
    return $t->request($method, $path, port => $port, @headers);
}

sub answer { verdict(req(@_)) }

# the backend's access log, polled for a request that passed after the
# ones that must not have reached it

my $marker = 0;

sub backend_log_after_marker {
    my ($port) = @_;

    my $uri = '/api/v3/dbs/orders/' . ++$marker . '/meta';
    my $res = req($port, 'GET', $uri, $market);
    my $log = '';

    for (1 .. 100) {
        $log = $t->read_file('backend.log');
        last if $log =~ /^\Q$uri\E$/m;
        sleep 0.05;
    }

    return ($res, $log);
}


# try_files $uri @api: the named location forwards the raw request URI

my $res = req(8080, 'GET', '/api/v3/dbs/orders/1/meta', $market);
is(verdict($res), '200', 'baseline: a marketplace token reads an order\'s meta through try_files into the named location');
is($res->{body}, "backend /api/v3/dbs/orders/1/meta\n", 'baseline: the named location forwards the request URI to the backend');
is(answer(8080, 'GET', '/api/v3/dbs/orders/1/meta'), '401 missing', 'baseline: the named location enforces its token_scope');
is(answer(8080, 'GET', '/api/v3/stocks/507', $ro_market), '200', 'baseline: a read-only marketplace token reads a stock through the named location');
is(answer(8080, 'DELETE', '/api/v3/dbs/orders/1/meta', $ro_market), '401 read_only', 'baseline: the named location refuses a catalogue write to a read-only token');

my @attacks = (
    [ '/api/v3/stocks/507/../../dbs/orders/1/meta', 'dot-dot segments that nginx normalizes into another operation' ],
    [ '/api/v3/dbs/orders/x/%2e%2e/meta', 'an encoded dot-dot segment' ],
    [ '/api/v3/stocks/507/%2e%2e/%2E%2E/dbs/orders/1/meta', 'encoded dot-dot segments that nginx normalizes into another operation' ],
    [ '/api/v3/dbs/orders/1%2Fmeta', 'an encoded slash' ],
    [ '/api/v3/dbs/orders/..;/meta', 'a "..;" segment' ],
    [ '/api/v3/stocks/507/.;/..;/dbs/orders/1/meta', '".;" and "..;" segments' ],
);

for my $a (@attacks) {
    my ($path, $what) = @$a;
    $res = req(8080, 'GET', $path, $market);
    is(verdict($res), '401 operation', "try_files into a named location: $what is refused with code operation");
    like($res->{json}{detail} // '', qr/path is not canonical/, "try_files into a named location: the refusal of $what says the path is not canonical");
}

is(answer(8080, 'DELETE', '/api/v3/dbs/orders/1%2Fmeta', $ro_market), '401 operation', 'try_files into a named location: an encoded slash is refused for a write too');

my $blog;
($res, $blog) = backend_log_after_marker(8080);
is(verdict($res), '200', 'a request after the attacks reaches the backend through the named location');
is(scalar(grep { $blog =~ /^\Q$_->[0]\E$/m } @attacks), 0, 'the backend never received a refused raw path');


# "..;" and ".;" segments: with a catalogue (unmatched=location) and without

my @semicolons = (
    '/api/v3/dbs/orders/..;/meta',
    '/api/v3/dbs/orders/1/.;/meta',
    '/x/..;x/y',
    '/x/;x/y',
);

is(answer(8082, 'GET', '/api/v3/dbs/orders/1/meta', $market), '200', 'baseline: the catalogue location lets a marketplace token read an order\'s meta');
is(answer(8082, 'GET', '/x/y', $market), '200', 'baseline: the catalogue location lets an unmatched path fall back to its marketplace rule');
is(answer(8082, 'GET', '/x/a;v=1/y', $market), '200', 'baseline: the catalogue location lets a ";" inside a named segment pass');
is(answer(8083, 'GET', '/x/y', $market), '200', 'baseline: the location without a catalogue lets a marketplace token pass');
is(answer(8083, 'GET', '/x/a;v=1/y', $market), '200', 'baseline: the location without a catalogue lets a ";" inside a named segment pass');

for my $path (@semicolons) {
    is(answer(8082, 'GET', $path, $market), '401 operation', "the catalogue location refuses $path with code operation");
    is(answer(8083, 'GET', $path, $market), '401 operation', "the location without a catalogue refuses $path with code operation");
}

is(answer(8083, 'GET', '/api/v3/stocks/507/../../dbs/orders/1/meta', $market), '401 operation', 'the location without a catalogue refuses dot-dot segments in the raw path');
is(answer(8083, 'GET', '/x/%2e%2e/y', $market), '401 operation', 'the location without a catalogue refuses an encoded dot-dot segment');
is(answer(8083, 'GET', '/x/1%2Fy', $market), '401 operation', 'the location without a catalogue refuses an encoded slash');
is(answer(8083, 'GET', '/x//y', $market), '401 operation', 'the location without a catalogue refuses an empty inner segment');
is(answer(8083, 'GET', '/x/%5c/y', $market), '401 operation', 'the location without a catalogue refuses an encoded backslash');

($res, $blog) = backend_log_after_marker(8083);
is(verdict($res), '200', 'a request after the ";" paths reaches the backend');
is(scalar(grep { $blog =~ /^\Q$_\E$/m } @semicolons), 0, 'the backend never received a refused ";" path');


# case variants of a catalogue path: refused in every unmatched= mode

for my $mode ([ 8084, 'location', '401' ], [ 8085, 'deny', '401' ],
              [ 8086, 'not_found', '404' ])
{
    my ($port, $name, $status) = @$mode;

    is(answer($port, 'GET', '/adv/v0/delete', $ro_advert), '401 read_only', "unmatched=$name: GET /adv/v0/delete is a write and refuses a read-only advert token");
    is(answer($port, 'GET', '/adv/v0/delete', $rw_advert), '200', "unmatched=$name: GET /adv/v0/delete passes a read-write advert token");
    is(answer($port, 'GET', '/adv/v0/list', $ro_advert), '200', "unmatched=$name: GET /adv/v0/list is a read and passes a read-only advert token");
    is(answer($port, 'GET', '/ADV/V0/DELETE', $ro_advert), "$status operation", "unmatched=$name: the upper-case variant /ADV/V0/DELETE is refused with code operation");
    is(answer($port, 'GET', '/adv/V0/delete', $ro_advert), "$status operation", "unmatched=$name: the mixed-case variant /adv/V0/delete is refused with code operation");
    is(answer($port, 'GET', '/ADV/V0/DELETE', $rw_advert), "$status operation", "unmatched=$name: the upper-case variant is refused a read-write token too");
    is(answer($port, 'GET', '/Adv/v0/List', $ro_advert), "$status operation", "unmatched=$name: a case variant of a read operation is refused with code operation");
}

is(answer(8084, 'GET', '/adv/v0/other', $ro_advert), '200', 'baseline: unmatched=location lets a path that is no case variant fall back to the location\'s read rule');

# nginx itself refuses a method with a lower-case letter (400), before any
# location: the module never sees it

for my $method ('get', 'Get') {
    my $raw = $t->http_raw("$method /adv/v0/delete HTTP/1.0\r\nHost: localhost\r\n"
                           . "Authorization: Bearer $ro_advert\r\n\r\n",
                           port => 8084);
    my $r = TokenScope::Test::parse_response($raw, 'GET');
    is($r->{status}, 400, "nginx answers the method line \"$method /adv/v0/delete\" with 400 itself");
    unlike($r->{body}, qr/^backend /, "the method line \"$method /adv/v0/delete\" does not reach the backend");
}

like($t->read_file('access.log'), qr{^127\.0\.0\.1 "get /adv/v0/delete HTTP/1\.0" 400 decision=- reason=- }m, 'the lower-case method line nginx refused itself has no decision in the access log');


# method overrides: a POST that reads, with a DELETE override

my @overrides = (
    [ [ 'X-HTTP-Method-Override' => 'DELETE' ], '', 'X-HTTP-Method-Override: DELETE' ],
    [ [ 'X-Method-Override' => 'DELETE' ], '', 'X-Method-Override: DELETE' ],
    [ [ 'X-HTTP-Method' => 'DELETE' ], '', 'X-HTTP-Method: DELETE' ],
    [ [ 'X-HTTP-Method-Override' => 'delete' ], '', 'X-HTTP-Method-Override: delete (lower case)' ],
    [ [ 'X-HTTP-Method-Override' => 'GET', 'X-HTTP-Method-Override' => 'DELETE' ], '', 'a second X-HTTP-Method-Override: DELETE after a GET' ],
    [ [], '?_method=DELETE', '?_method=DELETE' ],
    [ [], '?_method=del%45te', '?_method=del%45te (URL-encoded, lower case)' ],
    [ [], '?a=1&_method=GET&_method=DELETE', 'a second _method=DELETE after _method=GET' ],
);

my $op = '/content/v2/get/cards/list';

is(answer(8087, 'POST', $op, $ro_content), '200', 'baseline: unmatched=deny lets a read-only content token POST the catalogue read');
is(answer(8088, 'POST', $op, $ro_content), '200', 'baseline: unmatched=location lets a read-only content token POST the catalogue read');
is(answer(8087, 'POST', "$op?a=1", $ro_content), '200', 'baseline: a query without _method does not change the operation');
is(answer(8087, 'POST', $op, $ro_content, 'X-HTTP-Method-Override' => 'POST'), '200', 'baseline: an override naming the request\'s own allowed method passes');

for my $o (@overrides) {
    my ($headers, $query, $what) = @$o;
    is(answer(8087, 'POST', "$op$query", $ro_content, @$headers), '401 operation', "unmatched=deny: a read-only POST of the catalogue read with $what is refused with code operation");
    is(answer(8088, 'POST', "$op$query", $ro_content, @$headers), '401 read_only', "unmatched=location: a read-only POST of the catalogue read with $what is refused with code read_only");
}

is(answer(8087, 'POST', $op, $rw_content, 'X-HTTP-Method-Override' => 'DELETE'), '401 operation', 'unmatched=deny: an override to a method the catalogue does not have is refused a read-write token too');
is(answer(8088, 'POST', $op, $rw_content, 'X-HTTP-Method-Override' => 'DELETE'), '200', 'unmatched=location: a read-write content token may override to DELETE');
is(answer(8088, 'POST', "$op?_method=DELETE", $rw_content), '200', 'unmatched=location: a read-write content token may use ?_method=DELETE');

# without a catalogue (access auto)

is(answer(8083, 'GET', '/plain/x', $ro_content), '200', 'baseline: a read-only content token reads a location without a catalogue');
is(answer(8083, 'GET', '/plain/x', $ro_content, 'X-HTTP-Method-Override' => 'DELETE'), '401 read_only', 'without a catalogue: a read-only token GETting with X-HTTP-Method-Override: DELETE is refused with code read_only');
is(answer(8083, 'GET', '/plain/x?_method=DELETE', $ro_content), '401 read_only', 'without a catalogue: a read-only token GETting with ?_method=DELETE is refused with code read_only');
is(answer(8083, 'GET', '/plain/x', $ro_content, 'X-Method-Override' => 'PUT'), '401 read_only', 'without a catalogue: a read-only token GETting with X-Method-Override: PUT is refused with code read_only');
is(answer(8083, 'GET', '/plain/x', $rw_content, 'X-HTTP-Method-Override' => 'DELETE'), '200', 'without a catalogue: a read-write content token GETting with X-HTTP-Method-Override: DELETE passes');
is(answer(8083, 'GET', '/plain/x', $market, 'X-HTTP-Method-Override' => 'DELETE'), '401 category', 'without a catalogue: an override does not change the category check');

# token_scope_method_override ignore

for my $o (@overrides) {
    my ($headers, $query, $what) = @$o;
    is(answer(8089, 'POST', "$op$query", $ro_content, @$headers), '200', "ignore, unmatched=deny: a read-only POST of the catalogue read with $what passes");
    is(answer(8090, 'POST', "$op$query", $ro_content, @$headers), '200', "ignore, unmatched=location: a read-only POST of the catalogue read with $what passes");
}

is(answer(8090, 'GET', '/plain/x', $ro_content, 'X-HTTP-Method-Override' => 'DELETE'), '200', 'ignore, without a catalogue: a read-only token GETting with X-HTTP-Method-Override: DELETE passes');
is(answer(8089, 'DELETE', $op, $ro_content), '401 operation', 'ignore still checks the request\'s own method');

$t->done_testing();
