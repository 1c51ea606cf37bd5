package SpecReading;

# An independent reading of WB's OpenAPI files for the tests of
# scripts/openapi-rules: python3 with PyYAML only turns each file into JSON
# (Perl has no YAML module here); which methods, servers, categories,
# access and token types an operation has is decided here, in Perl, from
# WB's description of the extensions (../shared/wb-openapi/README.md), not
# from the converter's code.  WB's own text counts too: the categories named
# in <strong> in a description's <div class="description_auth"> are further
# alternatives (issue 15).  Also a reader of generated catalogues.

use strict;
use warnings;
use utf8;

use Exporter qw(import);
use JSON::PP;
use feature 'fc';

our @EXPORT_OK = qw(read_spec read_catalogue op_key);

# the methods of OpenAPI 3.0 to 3.2 path items
my @METHODS = qw(get put post delete options head patch trace query);

# WB's own security scheme; 14-wbd.yaml has another one (ApiKeyAuth), a
# separate API whose tokens the module does not know
our $SCHEME = 'HeaderApiKey';

# WB's names for its token categories, as in the table of GET /ping in
# 01-general.yaml ("Категория | URL запроса") and the description_auth
# blocks, and the module's names for them; the common-api row is "any
# valid token"
our %WB_NAMES = (
    'контент'                                => 'content',
    'аналитика'                              => 'contentanalytics',
    'цены и скидки'                          => 'discountsandprices',
    'маркетплейс'                            => 'marketplace',
    'статистика'                             => 'statistics',
    'продвижение'                            => 'advert',
    'вопросы и отзывы'                       => 'questionsandfeedback',
    'чат с покупателями'                     => 'buyerchat',
    'поставки'                               => 'supplies',
    'возвраты покупателями'                  => 'returns',
    'возвраты'                               => 'returns',
    'документы'                              => 'documents',
    'финансы'                                => 'finance',
    'управление пользователями продавца'     => 'usermanagement',
    'управление пользователями'              => 'usermanagement',
    'пользователи'                           => 'usermanagement',
    'тарифы, новости, информация о продавце' => 'common',
    'тарифы'                                 => 'common',
    'новости'                                => 'common',
    'информация о продавце'                  => 'common',
);

# the module's aliases, for telling whether the text adds a category
my %ALIAS = (analytics => 'contentanalytics', prices => 'discountsandprices',
             promotion => 'advert', feedbacks => 'questionsandfeedback',
             chat => 'buyerchat', users => 'usermanagement',
             all => 'common', commonapi => 'common');

my $DUMP = <<'EOF';
import json, sys, yaml
loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
docs = {}
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        docs[path] = yaml.load(f, Loader=loader)
json.dump(docs, sys.stdout, default=str)
EOF


# every operation of the files, one entry per operation and host:
# { file, method, path, host, key, own_servers, deny (a reason or undef),
#   cats (the alternatives, or [ 'common' ]), write, types, widened (the
#   categories WB's text adds to x-category), unknown (display names of the
#   text that are no category known here) }; with { descriptions => 0 }
# as the first argument, x-category alone

sub read_spec {
    my $opt = ref $_[0] eq 'HASH' ? shift : {};
    my (@files) = @_;

    my $descriptions = $opt->{descriptions} // 1;

    open my $py, '-|', 'python3', '-c', $DUMP, @files
        or die "cannot run python3: $!\n";
    my $json = do { local $/; <$py> };
    close $py or die "python3 could not read @files\n";

    my $docs = JSON::PP->new->decode($json);
    my @ops;

    for my $file (@files) {
        my $doc = $docs->{$file};
        my $paths = $doc->{paths} || {};

        for my $p (sort keys %$paths) {
            my $item = $paths->{$p};

            for my $method (@METHODS) {
                my $op = $item->{$method} or next;

                push @ops, operation($file, $doc, $item, $p, $method, $op,
                                     $descriptions);
            }
        }
    }

    return \@ops;
}


sub operation {
    my ($file, $doc, $item, $p, $method, $op, $descriptions) = @_;

    # the innermost non-empty servers: operation, path item, document
    my ($servers) = grep { ref $_ eq 'ARRAY' && @$_ }
                    $op->{servers}, $item->{servers}, $doc->{servers};

    my @urls;

    for my $server (@{ $servers || [] }) {
        my ($host, $base) =
            $server->{url} =~ m{^\w+://([^/:]+)(?::\d+)?(/.*)?$}
            or die "$file: $method $p: a server URL without a host\n";
        $base //= '';
        $base =~ s{/+$}{};
        push @urls, [ lc $host, $base ];
    }

    # a -sandbox host beside its production host is the same operation;
    # alone it stands for the production host
    my @production = grep { $_->[0] !~ /^[^.]*-sandbox\./ } @urls;
    @production = map { [ $_->[0] =~ s/^([^.]*)-sandbox\./$1./r, $_->[1] ] }
                  @urls
        unless @production;

    my $security = exists $op->{security} ? $op->{security}
                                          : $doc->{security};
    my %schemes = map { %$_ } @{ $security || [] };

    my $deny;

    if (%schemes && !$schemes{$SCHEME}) {
        $deny = 'another API: ' . join(', ', sort keys %schemes);

    } elsif (!defined $op->{'x-category'}) {
        $deny = 'no x-category';
    }

    # several categories: any one of them will do; "all" and "commonapi":
    # any valid token
    my $x = $op->{'x-category'} // [];
    my @cats = map { lc } ref $x ? @$x : split /[\s,]+/, $x;
    # WB's text: "a token with category <strong>Контент</strong> or
    # <strong>Продвижение</strong>"; only beside an x-category
    my (@widened, @unknown);

    if ($descriptions && !$deny) {
        my ($named, $unknown) = auth_text($op->{description});
        my %have = map { ($ALIAS{$_} // $_) => 1 } @cats;

        @unknown = @$unknown;

        unless ($have{common}) {
            @widened = grep { !$have{$_}++ } @$named;
            push @cats, @widened;
        }
    }

    @cats = ('common') if grep { /^(all|commonapi|common)$/ } @cats;

    # x-readonly-method: true is a read, whatever the method
    my $readonly = $op->{'x-readonly-method'};
    my $write = $method !~ /^(get|head|options|query)$/;

    if (defined $readonly) {
        die "$file: $method $p: x-readonly-method is not a boolean\n"
            unless JSON::PP::is_bool($readonly);
        $write = !$readonly;
    }

    my %types = map { lc $_ => 1 } @{ $op->{'x-token-types'} || [] };

    my @entries;

    for my $url (@production) {
        my $full = $url->[1] . $p;

        push @entries, {
            file        => $file =~ s{.*/}{}r,
            method      => uc $method,
            host        => $url->[0],
            path        => $full,
            key         => op_key(uc $method, $url->[0], $full),
            own_servers => ref $op->{servers} eq 'ARRAY'
                           && @{ $op->{servers} } ? 1 : 0,
            deny        => $deny,
            cats        => [ sort keys %{{ map { $_ => 1 } @cats }} ],
            write       => $write ? 1 : 0,
            types       => [ sort keys %types ],
            widened     => \@widened,
            unknown     => \@unknown,
        };
    }

    return @entries;
}


# the categories named in the description_auth blocks of a description:
# (module names, display names not known)

sub auth_text {
    my ($text) = @_;

    my (@named, @unknown, %seen);

    return (\@named, \@unknown) unless defined $text && !ref $text;

    while ($text =~ m{<div\s[^>]*class\s*=\s*["']?[^"'>]*
                      (?<![\w-])description_auth(?![\w-])[^>]*>
                      (.*?)</div}gsix)
    {
        my $block = $1;

        while ($block =~ m{<strong(?:\s[^>]*)?>(.*?)</strong}gsi) {
            my $name = $1;

            $name =~ s/<[^>]*>//g;
            $name =~ s/&nbsp;/ /g;
            $name =~ s/&amp;/&/g;
            $name =~ s/\s+/ /g;
            $name =~ s/^[\s.,:;]+|[\s.,:;]+$//g;
            next if $name eq '' || $seen{$name}++;

            my $wb = fc($name) =~ tr/ё/е/r;

            if (exists $WB_NAMES{$wb}) {
                push @named, $WB_NAMES{$wb};
            } else {
                push @unknown, $name;
            }
        }
    }

    return (\@named, \@unknown);
}


# what the module matches: template names do not count

sub op_key {
    my ($method, $host, $path) = @_;

    (my $p = $path) =~ s/\{[^}\/]*\}/{}/g;
    $p =~ s{/+$}{};

    return "$method $host$p";
}


# the rules of a generated catalogue by op_key: { method, host, path,
# deny, items (each a list of alternatives), write, types, line }

sub read_catalogue {
    my ($file) = @_;

    open my $fh, '<', $file or die "cannot read $file: $!\n";

    my (%rules, @bad, $declared);

    while (my $line = <$fh>) {
        $declared = $1 if $line =~ /^#\s*(\d+) rules?:/;

        next if $line =~ /^\s*(#|$)/
                || $line =~ /^\s*token_scope_operations\s+\S+\s*\{\s*$/
                || $line =~ /^\s*\}\s*$/;

        if ($line =~ /^\s*([A-Z]+)\s+(\S+)\s+("[^"]*"|\S+)\s+(\S+)
                      \s+(read|write)(?:\s+types=([\w,]+))?\s*;\s*$/x)
        {
            my ($method, $host, $path, $cats, $access, $types) =
                ($1, $2, $3, $4, $5, $6);
            $path =~ s/^"(.*)"$/$1/;

            $rules{ op_key($method, $host, $path) } = {
                method => $method,
                host   => $host,
                path   => $path,
                cats   => $cats,
                deny   => $cats eq 'deny' ? 1 : 0,
                items  => [ map { [ sort split /\|/ ] } split /,/, $cats ],
                write  => $access eq 'write' ? 1 : 0,
                types  => [ sort split /,/, $types // '' ],
            };

        } else {
            push @bad, $line;
        }
    }

    return (\%rules, \@bad, $declared);
}

1;
