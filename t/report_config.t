#!/usr/bin/perl

# Report mode and request-time configuration problems (issue 14, SPEC
# section 13): "token_scope $var" naming no or an unknown category and a
# host missing from token_scope_hosts get reason config, answered 500 in
# the JSON shape in enforce mode, passed (decision report) in report mode,
# logged at [error] once per location configuration and worker; the
# token_scope_hosts block and what nginx -t says about it; report mode
# never refuses, not even an unmatched catalogue path.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

my $CONF = <<'EOF';
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    map $host $req {
        default       "";
        content.test  content;
        typo.test     contnet;
    }

    token_scope_operations r {
        GET  localhost  /catalogue/known  content  read;
    }

    add_header X-TS-Decision $token_scope_decision always;
    add_header X-TS-Reason $token_scope_reason always;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location /enforce/ {
            token_scope $req;
            proxy_pass http://backend;
        }

        location /report/ {
            token_scope $req;
            token_scope_mode report;
            proxy_pass http://backend;
        }

        location /catalogue/ {
            token_scope content;
            token_scope_mode report;
            token_scope_operations_use r unmatched=deny;
            proxy_pass http://backend;
        }
    }

    # token_scope_hosts
    server {
        listen 127.0.0.1:%%PORT_8082%%;
        server_name localhost;

        token_scope_hosts {
            content.test  content;
            market.test   marketplace;
            open.test     off;
        }

        location / {
            proxy_pass http://backend;
        }

        location /own/ {
            token_scope content;
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8083%%;
        server_name localhost;

        token_scope_hosts {
            content.test  content;
            default       marketplace;
        }

        location / {
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8084%%;
        server_name localhost;

        token_scope_mode report;

        token_scope_hosts {
            content.test  content;
        }

        location / {
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


# nginx -t in a directory of its own, so that its [emerg] lines stay out of
# the error log of the nginx under test

my $c = TokenScope::Test->new();
$c->keygen('ES256', 'e1');

sub check_conf {
    my ($conf) = @_;
    $c->write_config($conf);
    return $c->test_config();
}

sub check_server {
    my ($server, $location) = @_;

    $location //= '';

    return check_conf(<<"EOF");
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        $server

        location / {
            $location
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}
EOF
}

# the line of the written nginx.conf that holds the text
sub conf_line {
    my ($text) = @_;
    my @lines = split /\n/, $c->read_file('nginx.conf');
    for my $i (0 .. $#lines) {
        return $i + 1 if index($lines[$i], $text) >= 0;
    }
    return 0;
}

my ($rc, $out);
my $conf_file = $c->testdir . '/nginx.conf';

($rc, $out) = check_server("token_scope_hosts {\n"
                           . "            a.test  content;\n"
                           . "            b.test  content marketplace;\n"
                           . "            c.test  off;\n"
                           . "            default marketplace;\n"
                           . "        }");
is($rc, 0, 'a valid token_scope_hosts block passes nginx -t') or diag($out);

($rc, $out) = check_server('', "token_scope_hosts {\n"
                               . "                a.test  content;\n"
                               . "            }");
is($rc, 0, 'a token_scope_hosts block in a location passes nginx -t') or diag($out);

($rc, $out) = check_server("token_scope_hosts {\n"
                           . "            a.test  contnet;\n"
                           . "        }");
my $line = conf_line('a.test  contnet;');
isnt($rc, 0, 'an unknown category in token_scope_hosts fails nginx -t');
like($out, qr/\[emerg\].*unknown token scope category or scope "contnet"/, 'the message names the unknown category in token_scope_hosts');
like($out, qr/unknown token scope category or scope "contnet" in \Q$conf_file\E:$line\b/, 'the message names the file and line of the bad host entry');

($rc, $out) = check_server("token_scope_hosts {\n"
                           . "            a.test  content;\n"
                           . "            default contnet;\n"
                           . "        }");
isnt($rc, 0, 'an unknown category as the token_scope_hosts default fails nginx -t');
like($out, qr/\[emerg\].*unknown token scope category or scope "contnet"/, 'the message names the unknown default category');

($rc, $out) = check_server('', "token_scope content;\n"
                               . "            token_scope_hosts {\n"
                               . "                a.test  content;\n"
                               . "            }");
isnt($rc, 0, 'token_scope and then token_scope_hosts in one location fail nginx -t');
unlike($out, qr/unknown directive/, 'token_scope and then token_scope_hosts in one location fail as a conflict, not as an unknown directive');

($rc, $out) = check_server('', "token_scope_hosts {\n"
                               . "                a.test  content;\n"
                               . "            }\n"
                               . "            token_scope content;");
isnt($rc, 0, 'token_scope_hosts and then token_scope in one location fail nginx -t');
unlike($out, qr/unknown directive/, 'token_scope_hosts and then token_scope in one location fail as a conflict, not as an unknown directive');

($rc, $out) = check_server("token_scope content;\n"
                           . "        token_scope_hosts {\n"
                           . "            a.test  content;\n"
                           . "        }");
isnt($rc, 0, 'token_scope and token_scope_hosts in one server fail nginx -t');
unlike($out, qr/unknown directive/, 'token_scope and token_scope_hosts in one server fail as a conflict, not as an unknown directive');

($rc, $out) = check_conf(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    token_scope_hosts {
        a.test  content;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location / {
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}
EOF
is($rc, 0, 'a token_scope_hosts block in the http block passes nginx -t') or diag($out);

($rc, $out) = check_conf($CONF);
is($rc, 0, 'the configuration of this test, with the token_scope_hosts servers, passes nginx -t') or diag($out);

undef $c;


$t->write_config($CONF);
$t->run();

my $content = $t->mint('e1', '--categories', 'content');
my $market = $t->mint('e1', '--categories', 'marketplace');

sub req {
    my ($port, $host, $path, $token) = @_;
    my @h = (port => $port, Host => $host);
    push @h, Authorization => "Bearer $token" if defined $token;
    return $t->get($path, @h);
}

sub answer { verdict(req(@_)) }

# [error] lines of the error log naming the typo
sub typo_lines {
    my @lines = $t->read_file('error.log') =~ /^(.*\[error\].*contnet.*)$/mg;
    return scalar @lines;
}


# token_scope $var, enforce mode

is(answer(8080, 'content.test', '/enforce/x', $content), '200', 'baseline: a host mapped to content admits a content token');
is(answer(8080, 'content.test', '/enforce/x', $market), '401 category', 'baseline: a host mapped to content refuses a marketplace token');

my $res = req(8080, 'typo.test', '/enforce/x', $content);
is(verdict($res), '500 config', 'enforce: a variable naming an unknown category is answered 500 with code config');
is($res->{json}{status}, 500, 'enforce: the configuration problem has status 500 in the JSON body');
is($res->{headers}{'x-ts-reason'}, 'config', 'enforce: $token_scope_reason is config for an unknown category');
is($res->{headers}{'x-ts-decision'}, 'deny', 'enforce: $token_scope_decision is deny for an unknown category');
unlike($res->{body}, qr/backend ok/, 'enforce: a request with an unknown category does not reach the backend');
is(answer(8080, 'typo.test', '/enforce/x'), '500 config', 'enforce: the configuration problem is found before the token is looked at');

$res = req(8080, 'unmapped.test', '/enforce/x', $content);
is(verdict($res), '500 config', 'enforce: an empty variable (unmapped host) is answered 500 with code config');
is($res->{headers}{'x-ts-reason'}, 'config', 'enforce: $token_scope_reason is config for an empty variable');

req(8080, 'typo.test', '/enforce/x', $content) for 1 .. 5;
is(typo_lines(), 1, 'the unknown category is logged at [error] once for the location, not per request');


# token_scope $var, report mode

$res = req(8080, 'typo.test', '/report/x', $content);
is($res->{status}, 200, 'report: a variable naming an unknown category passes');
is($res->{body}, "backend ok\n", 'report: a request with an unknown category reaches the backend');
is($res->{headers}{'x-ts-decision'}, 'report', 'report: $token_scope_decision is report for an unknown category');
is($res->{headers}{'x-ts-reason'}, 'config', 'report: $token_scope_reason is config for an unknown category');

$res = req(8080, 'unmapped.test', '/report/x', $content);
is($res->{status}, 200, 'report: an empty variable (unmapped host) passes');
is($res->{body}, "backend ok\n", 'report: a request with an empty variable reaches the backend');
is($res->{headers}{'x-ts-decision'}, 'report', 'report: $token_scope_decision is report for an empty variable');
is($res->{headers}{'x-ts-reason'}, 'config', 'report: $token_scope_reason is config for an empty variable');

is(req(8080, 'unmapped.test', '/report/x')->{status}, 200, 'report: an empty variable passes a request without a token too');
is(req(8080, 'content.test', '/report/x', $market)->{headers}{'x-ts-reason'}, 'category', 'baseline: report mode with a good variable keeps the reason category');
is(req(8080, 'content.test', '/report/x', $content)->{headers}{'x-ts-decision'}, 'allow', 'baseline: report mode with a good variable allows a content token');

req(8080, 'typo.test', '/report/x', $content) for 1 .. 5;
is(typo_lines(), 2, 'the report location, another location configuration, logs the unknown category once more, not per request');

like($t->read_file('access.log'), qr{"GET /report/x HTTP/1.0" 200 decision=report reason=config }, 'the access log records the configuration problem in report mode');
like($t->read_file('access.log'), qr{"GET /enforce/x HTTP/1.0" 500 decision=deny reason=config }, 'the access log records the configuration problem in enforce mode');


# report mode with a catalogue and unmatched=deny

$res = req(8080, 'localhost', '/catalogue/unknown', $content);
is($res->{status}, 200, 'report: an unmatched catalogue path passes under unmatched=deny');
is($res->{body}, "backend ok\n", 'report: an unmatched catalogue path reaches the backend');
is($res->{headers}{'x-ts-decision'}, 'report', 'report: $token_scope_decision is report for an unmatched path');
is($res->{headers}{'x-ts-reason'}, 'operation', 'report: $token_scope_reason is operation for an unmatched path');
is(req(8080, 'localhost', '/catalogue/unknown')->{status}, 200, 'report: an unmatched catalogue path passes without a token too');
is(req(8080, 'localhost', '/catalogue/x/../known', $content)->{headers}{'x-ts-decision'}, 'report', 'report: a raw path with a dot-dot segment passes as a report');
is(req(8080, 'localhost', '/catalogue/known', $content)->{headers}{'x-ts-decision'}, 'allow', 'baseline: report mode allows a matched operation with the right token');


# token_scope_hosts

is(answer(8082, 'content.test', '/x', $content), '200', 'token_scope_hosts: a content token passes on the host mapped to content');
is(answer(8082, 'Content.Test:8080', '/x', $content), '200', 'token_scope_hosts: the host is matched lower-cased and without its port');
is(answer(8082, 'content.test', '/x'), '401 missing', 'token_scope_hosts: the host mapped to content needs a token');
is(answer(8082, 'market.test', '/x', $content), '401 category', 'token_scope_hosts: a content token is refused on the host mapped to marketplace');
is(answer(8082, 'market.test', '/x', $market), '200', 'token_scope_hosts: a marketplace token passes on the host mapped to marketplace');
is(answer(8082, 'open.test', '/x'), '200', 'token_scope_hosts: the host mapped to off passes without a token');
is(answer(8082, 'unmapped.test', '/x', $content), '500 config', 'token_scope_hosts: a host missing from the block without default is answered 500 with code config');
is(req(8082, 'unmapped.test', '/x', $content)->{headers}{'x-ts-reason'}, 'config', 'token_scope_hosts: $token_scope_reason is config for an unmapped host');

is(answer(8082, 'market.test', '/own/x', $content), '200', 'a location\'s own token_scope overrides the server\'s token_scope_hosts for a content token');
is(answer(8082, 'market.test', '/own/x', $market), '401 category', 'a location\'s own token_scope overrides the server\'s token_scope_hosts for a marketplace token');
is(answer(8082, 'unmapped.test', '/own/x', $content), '200', 'a location\'s own token_scope applies to an unmapped host as well');

is(answer(8083, 'unmapped.test', '/x', $market), '200', 'token_scope_hosts default: an unmapped host admits a marketplace token');
is(answer(8083, 'unmapped.test', '/x', $content), '401 category', 'token_scope_hosts default: an unmapped host refuses a content token');
is(answer(8083, 'content.test', '/x', $content), '200', 'token_scope_hosts default: a mapped host keeps its own category');

$res = req(8084, 'unmapped.test', '/x');
is($res->{status}, 200, 'token_scope_hosts in report mode: an unmapped host passes');
is($res->{body}, "backend ok\n", 'token_scope_hosts in report mode: an unmapped host reaches the backend');
is($res->{headers}{'x-ts-decision'}, 'report', 'token_scope_hosts in report mode: $token_scope_decision is report for an unmapped host');
is($res->{headers}{'x-ts-reason'}, 'config', 'token_scope_hosts in report mode: $token_scope_reason is config for an unmapped host');
is(req(8084, 'content.test', '/x', $market)->{headers}{'x-ts-reason'}, 'category', 'token_scope_hosts in report mode: a mapped host keeps the reason category');

$t->done_testing();
