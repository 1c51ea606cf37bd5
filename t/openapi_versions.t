#!/usr/bin/perl

# scripts/openapi-rules over the three versions of WB's OpenAPI files
# (../shared/wb-openapi, 2026-03-11; ../shared/wb-openapi-versions/
# 2025-12-26 and 2026-05-approx): each generates a catalogue that nginx -t
# with the module accepts, and every operation's rule is checked against an
# independent reading of the YAML (t/openapi/SpecReading.pm): any of the
# x-category names and of the categories WB's description_auth text adds,
# read or write from x-readonly-method, token types, hosts from the
# innermost servers; operations without x-category and those of another
# security scheme (14-wbd.yaml) are refused.  Each widening by the text is
# noted, and --no-description-categories takes x-category alone.  Then
# --diff between the versions.

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);
use lib "$FindBin::Bin/openapi";

use Test::More;
use SpecReading qw(read_spec read_catalogue op_key);

chdir "$FindBin::Bin/.." or die "cannot chdir to the repository: $!\n";

plan skip_all => 'python3-yaml is not installed'
    unless system("python3 -c 'import yaml' 2>/dev/null") == 0;

my $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $MODULE = $ENV{TEST_NGINX_MODULE} || 'build/ngx_http_token_scope_module.so';

my $tmp = tempdir(CLEANUP => 1);

# a module built with ASan loads only with its runtime preloaded
# (make test-asan): --check then runs nginx through a wrapper that does so
if ($ENV{TEST_NGINX_PRELOAD}) {
    my $wrapper = "$tmp/nginx-preload";
    open my $fh, '>', $wrapper or die "cannot write $wrapper: $!\n";
    print $fh "#!/bin/sh\nLD_PRELOAD='$ENV{TEST_NGINX_PRELOAD}' exec '$NGINX' \"\$@\"\n";
    close $fh;
    chmod 0755, $wrapper;
    $NGINX = $wrapper;
}

# name, folder, operations, refused, any-of, with their own servers,
# widened by WB's text (cards/list and cards/trash: x-category content, the
# text Content or Promotion)
my $VERSIONS = '../shared/wb-openapi-versions';
my @VERSIONS = (
    [ '2025-12-26', "$VERSIONS/2025-12-26", 299, 31, 2, 12, 0 ],
    [ '2026-03-11', '../shared/wb-openapi', 286, 0, 2, 10, 2 ],
    [ '2026-05', "$VERSIONS/2026-05-approx", 290, 0, 2, 11, 2 ],
);

plan skip_all => 'the WB OpenAPI folders are not beside the repository'
    if grep { !-d $_->[1] } @VERSIONS;

sub convert {
    my $cmd = join ' ', map { "'$_'" } 'scripts/openapi-rules', @_;
    my $out = `$cmd 2>$tmp/stderr`;

    return ($? >> 8, $out, slurp("$tmp/stderr"));
}

sub slurp {
    my ($file) = @_;

    open my $fh, '<', $file or return undef;
    local $/;
    return scalar <$fh>;
}

# the first mismatches, for diag()
sub first {
    my (@list) = @_;
    return join "\n", @list[0 .. ($#list > 9 ? 9 : $#list)];
}

sub same_list {
    my ($a, $b) = @_;
    return join(',', @$a) eq join(',', @$b);
}

my %spec;

for my $v (@VERSIONS) {
    my ($name, $dir, $count, $refused, $anyof, $own, $widen) = @$v;

    my @files = sort glob("$dir/*.yaml");
    my $ops = read_spec(@files);

    $spec{$name} = $ops;

    my ($rc, $out, $err) = convert('--name', 'wb', '-o', "$tmp/$name.conf",
                                   @files);

    is($rc, 0, "$name: the catalogue is generated, refusals included") or diag($err);
    like($err, qr/\b$count operations in \d+ files -> $count rules/, "$name: all $count operations are counted, one rule each");

    my ($rules, $bad, $declared) = read_catalogue("$tmp/$name.conf");

    is(scalar @$bad, 0, "$name: every line of the catalogue is a rule") or diag(first(@$bad));
    is($declared, scalar keys %$rules, "$name: the header counts the rules");

    my (%seen, @missing, @cats, @access, @types, @deny, @extra);

    for my $op (@$ops) {
        my $rule = $rules->{ $op->{key} };
        my $where = "$op->{file}: $op->{method} $op->{host}$op->{path}";

        $seen{ $op->{key} } = 1;

        if (!$rule) {
            push @missing, $where;
            next;
        }

        if ($op->{deny}) {
            push @deny, "$where ($op->{deny}): $rule->{cats}"
                unless $rule->{deny};
            next;
        }

        if ($rule->{deny}) {
            push @deny, "$where: refused, expected $rule->{cats}";
            next;
        }

        my @want = @{ $op->{cats} };
        my @items = @{ $rule->{items} };

        push @cats, "$where: $rule->{cats}, expected any of @want"
            unless @items == 1 && same_list($items[0], \@want);

        push @access, "$where: " . ($rule->{write} ? 'write' : 'read')
            if $rule->{write} != $op->{write};

        push @types, "$where: types=@{ $rule->{types} }, expected "
                     . "@{ $op->{types} }"
            unless same_list($rule->{types}, $op->{types});
    }

    @extra = grep { !$seen{$_} } sort keys %$rules;

    is(scalar @missing, 0, "$name: every operation has its rule, on the host of its innermost servers") or diag(first(@missing));
    is(scalar @extra, 0, "$name: every rule is an operation of the files") or diag(first(@extra));
    is(scalar @cats, 0, "$name: every rule needs any one of the operation's x-category names and those WB's description_auth text adds, or only a valid token for all and commonapi") or diag(first(@cats));
    is(scalar @access, 0, "$name: every rule is a read or a write as x-readonly-method says") or diag(first(@access));
    is(scalar @types, 0, "$name: every rule restricts token types as x-token-types says") or diag(first(@types));
    is(scalar @deny, 0, "$name: exactly the operations without x-category or of another API are refused") or diag(first(@deny));

    is(scalar(grep { $_->{deny} } values %$rules), $refused, "$name: $refused operations are refused");
    is(scalar(grep { @{ $_->{items} } == 1 && @{ $_->{items}[0] } > 1 } values %$rules), $anyof, "$name: $anyof operations take any of several categories");
    is(scalar(grep { $_->{own_servers} } @$ops), $own, "$name: $own operations have servers of their own");
    is(scalar(grep { $_->{own_servers} && !$rules->{ $_->{key} } } @$ops), 0, "$name: every operation with servers of its own has its rule on their host");

    # WB's text beside x-category: one note per operation it widens

    my @widened = grep { @{ $_->{widened} } } @$ops;
    my @unknown = map { @{ $_->{unknown} } } @$ops;
    my @notes = $err =~ /^openapi-rules: note: .*: x-category says .*$/mg;
    my @unnoted = grep {
        my $op = $_;
        my $where = "$op->{file}: $op->{method} $op->{path}";
        my $adds = join ' or ', map { $_ eq 'common' ? 'commonapi' : $_ }
                                @{ $op->{widened} };

        $err !~ m{^openapi-rules:\ note:\ \S*/\Q$where\E:
                  \ x-category\ says\ \S.*,\ the\ description\ says
                  \ .*\Q$adds\E(?:\ or\ \S+)*:
                  \ any\ (?:of\ them|valid\ token)$}mx
    } @widened;

    is(scalar @widened, $widen, "$name: WB's description_auth text names categories x-category lacks for $widen operations");
    is(scalar @notes, $widen, "$name: one note per operation the text widens");
    is(scalar @unnoted, 0, "$name: each note names the file, the operation, what x-category says and what the text adds") or diag(first(map { "$_->{file}: $_->{method} $_->{path}" } @unnoted));
    is(scalar @unknown, 0, "$name: every category name of WB's text is one of WB's names known to the converter") or diag(first(@unknown));
    unlike($err, qr/names the category/, "$name: so no name is noted as unknown");

    if ($widen) {
        like($err, qr/^openapi-rules:   x-category widened by the description: $widen operations/m, "$name: the summary counts the operations the text widens");
    } else {
        unlike($err, qr/x-category widened/, "$name: the summary does not mention a widening");
    }

    # --no-description-categories: x-category alone, the difference
    # exactly the widened operations

    my $x = "$tmp/$name-x.conf";

    my ($x_rc, $x_out, $x_err) = convert('--no-description-categories',
                                         '--name', 'wb', '-o', $x, @files);
    is($x_rc, 0, "$name: --no-description-categories generates the catalogue");
    unlike($x_err, qr/x-category says|x-category widened/, "$name: --no-description-categories notes no widening");

    ($x_rc, $x_out) = convert('--diff', $x, "$tmp/$name.conf");
    like($x_out, qr/^0 added, 0 removed, $widen changed, \d+ unchanged$/m, "$name: --no-description-categories changes only the $widen widened operations");

    my @x = map {
        my $op = $_;
        my @was = grep { my $c = $_; !grep { $_ eq $c } @{ $op->{widened} } }
                  @{ $op->{cats} };
        my $what = "$op->{method} $op->{host}$op->{path}";

        $x_out =~ m{^changed: \Q$what\E: categories (\S+) -> (\S+)$}m
            && same_list([ sort split /\|/, $1 ], \@was)
            && same_list([ sort split /\|/, $2 ], $op->{cats})
            ? () : "$op->{method} $op->{path}"
    } grep { !grep { $_ eq 'common' } @{ $_->{cats} } } @widened;

    is(scalar @x, 0, "$name: --diff shows each widened operation going from x-category alone to any of x-category and the text") or diag(first(@x));

    my %by_host;
    $by_host{ $_->{host} }++ for @$ops;
    like($err, qr/^openapi-rules: +$by_host{$_}  \Q$_\E$/m, "$name: the summary counts the rules of $_") for sort keys %by_host;

    # nginx -t with the module, before the file is replaced

    SKIP: {
        skip "no nginx binary at $NGINX", 2 unless -x $NGINX;
        skip "module not built: $MODULE (run make)", 2 unless -f $MODULE;

        ($rc, $out, $err) = convert('--name', 'wb', '--check', $MODULE,
                                    '--nginx', $NGINX, '-o',
                                    "$tmp/$name-checked.conf", @files);

        is($rc, 0, "$name: nginx -t with the module accepts the catalogue") or diag($err =~ /(nginx -t refused.*)/s);
        ok((slurp("$tmp/$name-checked.conf") // '') eq slurp("$tmp/$name.conf"), "$name: the checked catalogue is the one generated without --check");
    }
}


# WB's own words: POST /content/v2/get/cards/list and /cards/trash take a
# token with category Content or Promotion (2025-12-26)

my ($rules) = read_catalogue("$tmp/2025-12-26.conf");

for my $path ('/content/v2/get/cards/list', '/content/v2/get/cards/trash') {
    my $rule = $rules->{ op_key('POST', 'content-api.wildberries.ru', $path) };
    is($rule && $rule->{cats}, 'advert|content', "2025-12-26: POST $path is advert|content, a Content or a Promotion token");
}

like(slurp("$tmp/2025-12-26.conf"), qr{^    # refused, 14-wbd\.yaml: another API: security scheme ApiKeyAuth, not HeaderApiKey$}m, '2025-12-26: the refusals of 14-wbd.yaml are under a comment naming the other security scheme');
like(slurp("$tmp/2025-12-26.conf"), qr{^    GET     user-management-api\.wildberries\.ru  /api/v1/users +deny  read;$}m, '2025-12-26: user management without x-category is refused');

# 2026-03-11 and 2026-05: x-category content, WB's text still Content or
# Promotion; the text is right (issue 15)

for my $name ('2026-03-11', '2026-05') {
    my ($rules) = read_catalogue("$tmp/$name.conf");
    my ($x) = read_catalogue("$tmp/$name-x.conf");

    for my $path ('/content/v2/get/cards/list', '/content/v2/get/cards/trash') {
        my $key = op_key('POST', 'content-api.wildberries.ru', $path);
        is($rules->{$key} && $rules->{$key}{cats}, 'content|advert', "$name: POST $path is content|advert, as WB's text says, though x-category says content");
        is($x->{$key} && $x->{$key}{cats}, 'content', "$name: with --no-description-categories POST $path is content, as x-category says");
    }
}

is(slurp("$tmp/2026-03-11.conf"), slurp('conf.d/wb-operations.conf'), 'conf.d/wb-operations.conf is the 2026-03-11 catalogue');

my ($rc, $out, $err) = convert('--strict', '--name', 'wb',
    sort glob("$VERSIONS[0][1]/*.yaml"));
is($rc, 1, '2025-12-26 with --strict is an error');
like($err, qr{--strict: 9 unclassified, 22 skipped: nothing written}, '2025-12-26 with --strict names what it refuses');


# --diff between the versions, its counts from the independent reading

sub diff_counts {
    my ($old, $new) = @_;

    my %a = map { $_->{key} => 1 } @{ $spec{$old} };
    my %b = map { $_->{key} => 1 } @{ $spec{$new} };

    return (scalar(grep { !$a{$_} } keys %b),
            scalar(grep { !$b{$_} } keys %a));
}

my ($added, $removed) = diff_counts('2025-12-26', '2026-03-11');

($rc, $out, $err) = convert('--diff', $VERSIONS[0][1], $VERSIONS[1][1]);
is($rc, 1, '--diff between 2025-12-26 and 2026-03-11 exits 1');
like($out, qr{^$added added, $removed removed, 9 changed, \d+ unchanged$}m, "--diff between 2025-12-26 and 2026-03-11 counts $added operations added and $removed removed");
unlike($out, qr{^changed: .*/content/v2/get/cards/}m, '--diff finds the cards methods Content or Promotion in both, through WB\'s text in 2026-03-11');

($rc, $out, $err) = convert('--no-description-categories', '--diff',
    $VERSIONS[0][1], $VERSIONS[1][1]);
like($out, qr{^$added added, $removed removed, 11 changed, \d+ unchanged$}m, '--diff with --no-description-categories counts the two cards methods as changed too');
like($out, qr{^changed: POST content-api\.wildberries\.ru/content/v2/get/cards/list: categories advert\|content -> content$}m, '--diff with --no-description-categories shows the cards list going from Content or Promotion to Content');
like($out, qr{^changed: GET user-management-api\.wildberries\.ru/api/v1/users: rule deny read -> usermanagement read types=personal$}m, '--diff shows a refused operation getting its category');
like($out, qr{^removed: GET devapi-digital\.wildberries\.ru/api/v1/catalog: deny read$}m, '--diff shows the other API\'s refusals going away');

($added, $removed) = diff_counts('2026-03-11', '2026-05');

($rc, $out, $err) = convert('--diff', $VERSIONS[1][1], $VERSIONS[2][1]);
like($out, qr{^$added added, $removed removed, 0 changed, 285 unchanged$}m, "--diff between 2026-03-11 and 2026-05 counts $added added and $removed removed");
like($out, qr{^removed: GET statistics-api\.wildberries\.ru/api/v1/supplier/incomes: statistics read$}m, '--diff shows GET /api/v1/supplier/incomes removed');
like($out, qr{^added: GET feedbacks-api\.wildberries\.ru/api/common/v1/rating: questionsandfeedback read types=service$}m, '--diff shows GET /api/common/v1/rating added with its token type');

($rc, $out, $err) = convert('--diff', 'conf.d/wb-operations.conf',
    "$tmp/2026-05.conf");
like($out, qr{^$added added, $removed removed, 0 changed, 285 unchanged$}m, '--diff of two catalogue files gives the same counts as of their folders');

done_testing();
