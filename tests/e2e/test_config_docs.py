"""The configuration documentation says exactly what ferry reads.

ferry itself says which keys exist: `ferry --check-config --list-keys -c FILE` prints every key
its readers (the core's and each adapter's) look up for FILE, set or not. Run on
gateway.toml.example with its commented-out sections uncommented (they are written to be
complete), that list must match, key for key:
- gateway.toml.example (every key ferry reads appears there, and ferry accepts the file);
- man/gateway.toml.5 (each table a section, each key a tagged paragraph);
- README.md (every key's name, in backticks).
A key added to the code and not to the documents, or a documented key that no longer exists,
fails here with its name."""

import os
import re
import tomllib

import harness as h

EXAMPLE = os.path.join(h.REPO_ROOT, "gateway.toml.example")
MAN = os.path.join(h.REPO_ROOT, "man", "gateway.toml.5")
README = os.path.join(h.REPO_ROOT, "README.md")

CONTAINERS = ("table", "array of tables")
# Keys that exclude a key the example sets (storage.url: instead of storage.path), so that
# the example names them in a comment rather than in a sample line.
EXCLUSIVE = {"storage.url"}

# A commented-out line of a sample section: "# [table]", "# [[array]]" or "# key = value".
SAMPLE_LINE = re.compile(r"^# ((\[.*)|([A-Za-z0-9_]+\s*=.*))$")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def uncommented_example(tmp_path):
    """gateway.toml.example with its sample sections uncommented; secret files it names are
    made (holding a dummy secret) under tmp_path."""
    out = []
    for line in read(EXAMPLE).splitlines():
        m = SAMPLE_LINE.match(line)
        if m:
            line = m.group(1)
        f = re.match(r'^(\w+_file)(\s*=\s*)"[^"]*"(.*)$', line)
        if f:
            secret = tmp_path / ("secret-%d" % len(out))
            secret.write_text("dummy-secret\n")
            line = '%s%s"%s"%s' % (f.group(1), f.group(2), secret, f.group(3))
        out.append(line)
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(out) + "\n")
    return path


def ferry_keys(ferry_bin, config, cwd):
    r = h.run_ferry_cli(["--check-config", "--list-keys", "-c", str(config)], binary=ferry_bin)
    assert r.returncode == 0, "ferry rejects gateway.toml.example with its sections uncommented:\n%s" % r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert rows and all(len(row) == 3 and row[2] in ("set", "default") for row in rows), r.stdout
    return rows


class Tables:
    """The tables of a parsed config: ferry's name of each (its keys joined with dots, array
    items as [N]) -> (generic path, adapter). Generic paths name the tables of a map (a table
    whose values are all tables: components, endpoints, servers) with *, array items with []."""

    def __init__(self, doc):
        self.by_name = {"": ("", None)}
        self.keys = set()            # (concrete table name, key) of every value
        self._walk(doc, "", "", None, top=True)

    def _walk(self, node, name, generic, adapter, top=False):
        is_map = not top and node and all(isinstance(v, dict) for v in node.values())
        for k, v in node.items():
            n = "%s.%s" % (name, k) if name else k
            g = "%s.%s" % (generic, "*" if is_map else k) if generic else k
            a = adapter
            if name == "components" and isinstance(v, dict):
                a = v.get("adapter")
            if isinstance(v, dict):
                self.by_name[n] = (g, a)
                self._walk(v, n, g, a)
            elif isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
                for i, item in enumerate(v):
                    self.by_name["%s[%d]" % (n, i + 1)] = (g + "[]", a)
                    self._walk(item, "%s[%d]" % (n, i + 1), g + "[]", a)
            else:
                self.keys.add((name, k))

    def generic(self, table, key):
        """(generic path, adapter) of KEY in the table ferry names TABLE."""
        g, a = self.by_name[table]
        return ("%s.%s" % (g, key) if g else key), a


def scoped(entries, common):
    """{(scope, generic path)}: scope "core" outside components, "*" for the keys of every
    component, else the component's adapter."""
    out = set()
    for g, a in entries:
        if not g.startswith("components."):
            out.add(("core", g))
        elif g.count(".") == 2 and g.split(".")[2] in common:
            out.add(("*", g))
        else:
            out.add((a, g))
    return out


def man_keys():
    """{(scope, generic path)} from man/gateway.toml.5: .SH/.SS headers name tables
    ("[xmpp]", "SMS ADAPTER [components.NAME]", "[[components.NAME.users]]"), the tag line
    of each .TP names keys in bold."""
    keys = set()
    scope = table = None
    lines = read(MAN).splitlines()
    for i, line in enumerate(lines):
        m = re.match(r'^\.(SH|SS)\s+"?(.*?)"?\s*$', line)
        if m:
            title = m.group(2).replace("\\(dq", '"')
            t = re.match(r"^(?:(\w+) ADAPTER )?(\[\[?)(.*?)\]\]?$", title)
            if not t:
                scope = table = None
                continue
            parts = re.findall(r'"[^"]*"|[^.]+', t.group(3))
            table = ".".join("*" if p.startswith('"') or p.isupper() else p for p in parts)
            table += "[]" if t.group(2) == "[[" else ""
            if m.group(1) == "SH":
                scope = t.group(1).lower() if t.group(1) else ("*" if table == "components.*" else "core")
            continue
        if line.startswith(".TP") and table is not None and i + 1 < len(lines):
            tag = re.match(r"^\.(B|BR|RB|BI|IB)\s+(.*)$", lines[i + 1])
            assert tag, "man/gateway.toml.5:%d: a .TP tag without bold key names: %r" % (i + 2, lines[i + 1])
            args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', tag.group(2))]
            bold = args if tag.group(1) == "B" else args[0 if tag.group(1) in ("BR", "BI") else 1::2]
            for word in bold:
                if re.match(r"^[a-z][a-z0-9_]*$", word):
                    keys.add((scope, "%s.%s" % (table, word)))
    return keys


def describe(keys):
    return "\n".join("  %-8s %s" % k for k in sorted(keys, key=lambda k: (k[1], str(k[0]))))


def test_documents_list_exactly_the_keys_ferry_reads(ferry_bin, tmp_path):
    config = uncommented_example(tmp_path)
    rows = ferry_keys(ferry_bin, config, tmp_path)
    with open(config, "rb") as f:
        tables = Tables(tomllib.load(f))
    example_text = read(EXAMPLE)

    # Which table each key ferry read belongs to (a key's own name never has a dot).
    read_keys = []
    for path, kind, _ in rows:
        if kind in CONTAINERS:
            continue
        table, _, key = path.rpartition(".")
        assert table in tables.by_name, "ferry read %s, in a table the example does not have" % path
        read_keys.append((table, key))
    components = [n for n in tables.by_name if n.count(".") == 1 and n.startswith("components.")]
    common = set.intersection(*({k for t, k in read_keys if t == c} for c in components))
    assert {"adapter", "domain", "secret"} <= common, common

    from_ferry = scoped([tables.generic(t, k) for t, k in read_keys], common)
    in_example = scoped([tables.generic(t, k) for t, k in tables.keys], common)

    # Every key ferry reads is in the example; a KEY_file form, and a key that excludes one
    # the example sets (EXCLUSIVE), may be named in a comment instead.
    def named_alternative(s, g):
        base = g[:-5] if g.endswith("_file") else g
        return (((s, base) in in_example and base != g) or base in EXCLUSIVE) \
            and g.rsplit(".", 1)[1] in example_text
    missing = {(s, g) for s, g in from_ferry - in_example if not named_alternative(s, g)}
    assert not missing, "keys ferry reads that gateway.toml.example does not show:\n" + describe(missing)
    unread = in_example - from_ferry
    assert not unread, "keys in gateway.toml.example that ferry does not read:\n" + describe(unread)

    # The man page lists exactly those (the KEY_file forms too).
    man = man_keys()
    lacking, extra = from_ferry - man, man - from_ferry
    assert not lacking, "keys missing from man/gateway.toml.5:\n" + describe(lacking)
    assert not extra, "keys in man/gateway.toml.5 that ferry does not read:\n" + describe(extra)

    # README names every key (in backticks, alone or in a dotted path or list).
    readme = read(README)
    absent = sorted({g.rsplit(".", 1)[-1] for _, g in from_ferry
                     if not re.search(r"`[^`\n]*\b%s\b[^`\n]*`" % re.escape(g.rsplit(".", 1)[-1]), readme)})
    assert not absent, "keys README.md does not name: %s" % ", ".join(absent)


def test_list_keys_says_set_or_default(ferry_bin, tmp_path):
    """--list-keys lists keys left to their defaults too, with the type ferry expects."""
    config = tmp_path / "min.toml"
    config.write_text('[components.hooks]\nadapter = "webhook"\ndomain = "hooks.localhost"\n'
                      'secret = "s"\n[components.hooks.endpoints.alerts]\nurl = "http://127.0.0.1:9/"\n')
    rows = {r[0]: (r[1], r[2]) for r in ferry_keys(ferry_bin, config, tmp_path)}
    assert rows["components.hooks.secret"] == ("string", "set")
    assert rows["components.hooks.secret_file"] == ("string", "default")
    assert rows["xmpp.port"] == ("integer", "default")
    assert rows["components.hooks.retry_delay"] == ("number", "default")
    assert rows["components.hooks.endpoints.alerts.allow"] == ("array of strings", "default")
    assert rows["components.hooks.endpoints"] == ("table", "set")


def test_list_keys_refuses_a_bad_config(ferry_bin, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[xmpp]\nprot = 5347\n[components.hooks]\nadapter = "webhook"\n'
                      'domain = "hooks.localhost"\nsecret = "s"\n[components.hooks.endpoints.a]\n')
    r = h.run_ferry_cli(["--check-config", "--list-keys", "-c", str(config)], binary=ferry_bin)
    assert r.returncode == 1
    assert "%s:2: xmpp.prot: unknown key" % config in r.stderr
    assert r.stdout == ""
