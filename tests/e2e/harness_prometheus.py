"""The e2e harness's reader of GET /metrics: a strict parser of the
Prometheus text format (version 0.0.4) and lookups by name and labels."""

import re

# ---------------------------------------------------------------- Prometheus


class Sample:
    """One sample of the Prometheus text format: name, labels (dict), value."""

    def __init__(self, name, labels, value):
        self.name = name
        self.labels = labels
        self.value = value

    def __repr__(self):
        return "%s%r %r" % (self.name, self.labels, self.value)


_PROM_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROM_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*')
_PROM_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def _prom_unescape(v):
    return re.sub(r"\\([\\\"n])", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def _prom_float(text, lineno):
    if text in ("+Inf", "Inf"):
        return float("inf")
    if text == "-Inf":
        return float("-inf")
    if text == "NaN":
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise ValueError("line %d: %r is not a sample value" % (lineno, text))


def parse_prometheus(text):
    """Parses the Prometheus text exposition format (0.0.4) strictly.
    Returns (samples, types, helps): samples a list of Sample, types and
    helps {family name: text}. Raises ValueError naming the line on anything
    malformed: a sample line that does not parse (name, labels, escapes,
    value, timestamp), a TYPE after the family's samples or twice, an
    unknown type, a duplicate series, a missing final newline."""
    samples, types, helps, seen_series, sampled = [], {}, {}, set(), set()
    if text and not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    for lineno, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not _PROM_NAME.fullmatch(name):
                    raise ValueError("line %d: bad metric name %r" % (lineno, name))
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    if rest not in _PROM_TYPES:
                        raise ValueError("line %d: unknown type %r" % (lineno, rest))
                    if name in types:
                        raise ValueError("line %d: second TYPE for %s" % (lineno, name))
                    if name in sampled:
                        raise ValueError("line %d: TYPE for %s after its samples" % (lineno, name))
                    types[name] = rest
                else:
                    if name in helps:
                        raise ValueError("line %d: second HELP for %s" % (lineno, name))
                    helps[name] = rest
            continue
        m = _PROM_NAME.match(line)
        if not m:
            raise ValueError("line %d: no metric name: %r" % (lineno, line))
        name, pos, labels = m.group(0), m.end(), {}
        if pos < len(line) and line[pos] == "{":
            # parse label by label: a '}' or ',' may sit inside a value
            inner_pos = pos + 1
            while True:
                if inner_pos < len(line) and line[inner_pos] == "}":
                    end = inner_pos
                    break
                lm = _PROM_LABEL.match(line, inner_pos)
                if not lm:
                    raise ValueError("line %d: bad labels: %r" % (lineno, line))
                lname, lvalue = lm.group(1), _prom_unescape(lm.group(2))
                if lname in labels:
                    raise ValueError("line %d: label %s twice" % (lineno, lname))
                labels[lname] = lvalue
                inner_pos = lm.end()
                if inner_pos < len(line) and line[inner_pos] == ",":
                    inner_pos += 1
                elif inner_pos < len(line) and line[inner_pos] == "}":
                    continue
                else:
                    raise ValueError("line %d: bad labels: %r" % (lineno, line))
            pos = end + 1
        rest = line[pos:].split()
        if len(rest) not in (1, 2) or not line[pos:pos + 1].isspace():
            raise ValueError("line %d: expected a value (and a timestamp): %r" % (lineno, line))
        value = _prom_float(rest[0], lineno)
        if len(rest) == 2 and not re.fullmatch(r"-?[0-9]+", rest[1]):
            raise ValueError("line %d: bad timestamp %r" % (lineno, rest[1]))
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[:-len(suffix)] in types and \
                    types[name[:-len(suffix)]] in ("histogram", "summary"):
                family = name[:-len(suffix)]
        sampled.add(family)
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ValueError("line %d: series %s%s twice" % (lineno, name, labels))
        seen_series.add(key)
        samples.append(Sample(name, labels, value))
    return samples, types, helps


def metric_values(samples, name, **labels):
    """The values of the samples called name whose labels include labels."""
    return [s.value for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def metric_value(samples, name, **labels):
    """The one value of name{labels...}; raises KeyError if there is not
    exactly one."""
    vals = metric_values(samples, name, **labels)
    if len(vals) != 1:
        raise KeyError("%d samples for %s%r" % (len(vals), name, labels))
    return vals[0]
